"""Tabular solvers of two-player zero-sum extensive-form games: CFR, CFR+, CFR-BR and extensive-form fictitious play.

Each works on an ``ExtensiveGame`` (``marlkit.population.efg``) with whole-tree passes of NumPy arrays, and keeps
an average policy that converges to a Nash equilibrium (its NashConv falls towards 0).

- ``CFRSolver``: counterfactual regret minimisation (Zinkevich et al. 2007, "Regret Minimization in Games with
  Incomplete Information") with alternating updates: player 0's regrets are updated, its current policy recomputed
  by regret matching, then player 1's against it. The average weights iteration ``t``'s policy by the player's own
  reach probability.
- ``CFRSolver(plus=True)``: CFR+ (Tammelin 2014, "Solving Large Imperfect Information Games Using CFR+"): regret
  matching+ (cumulative regrets floored at 0 after every update) and linear averaging (iteration ``t`` weighted by
  ``t``).
- ``CFRBRSolver``: CFR-BR (Johanson et al. 2012, "Finding Optimal Abstract Strategies in Extensive-Form Games"):
  every iteration each player's regrets are updated against the other's exact best response to the current policy.
- ``XFPSolver``: extensive-form fictitious play (Heinrich, Lanctot and Silver 2015, "Fictitious Self-Play in
  Extensive-Form Games", Algorithm 1): the average policy moves a step ``1 / (t + 1)`` towards a best response to
  itself, mixed as a behaviour policy weighted by each policy's reach (``efg.mix_policies``).

The update rules are OpenSpiel's (``open_spiel.python.algorithms.cfr``, ``cfr_br``, ``fictitious_play``): from the
same start the average policies agree to rounding, which the tests check.
"""

from __future__ import annotations

import numpy as np

from marlkit.population.efg import (
    ExtensiveGame,
    _best_response,
    _edge_probs,
    _reach,
    _values,
    mix_policies,
    uniform_policy,
)


def regret_matching(regrets: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Per information state, play each legal action in proportion to its positive cumulative regret; uniformly
    over the legal actions where no regret is positive."""
    positive = np.where(legal, np.maximum(regrets, 0.0), 0.0)
    total = positive.sum(axis=1, keepdims=True)
    uniform = legal / legal.sum(axis=1, keepdims=True)
    return np.where(total > 0, positive / np.where(total > 0, total, 1.0), uniform)


def counterfactual_regrets(game: ExtensiveGame, policy: np.ndarray, player: int) -> tuple[np.ndarray, np.ndarray]:
    """One CFR pass for ``player`` under the profile ``policy``: the instantaneous counterfactual regret of every
    (information state, action), ``(n_infostates, num_actions)``, and ``player``'s own probability of reaching each
    information state, ``(n_infostates,)``. Both are meaningful on ``player``'s rows only.

    The regret of action ``a`` at information state ``I`` is the sum over the histories ``h`` of ``I`` of the
    probability that the opponent and chance reach ``h`` times how much more ``player`` gets from ``h`` by playing
    ``a`` than by following ``policy`` there."""
    p = _edge_probs(game, policy)
    reach = _reach(game, p)
    values = _values(game, p) * (1.0 if player == 0 else -1.0)
    others = np.prod(np.delete(reach, player, axis=0), axis=0)
    mine = game.edge_owner == player
    parent, child = game.edge_parent[mine], game.edge_child[mine]
    gains = others[parent] * (values[child] - values[parent])
    size = game.num_infostates * game.num_actions
    regrets = np.bincount(game.edge_policy_index[mine], weights=gains, minlength=size).reshape(game.legal.shape)
    return regrets, reach[player, game.infostate_node]


def _average(cumulative: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Normalise each information state's accumulated policy; uniform where nothing was accumulated."""
    total = cumulative.sum(axis=1, keepdims=True)
    uniform = legal / legal.sum(axis=1, keepdims=True)
    return np.where(total > 0, cumulative / np.where(total > 0, total, 1.0), uniform)


class CFRSolver:
    """CFR with alternating updates; ``plus=True`` gives CFR+ (regret matching+ and linear averaging), and the two
    ingredients can also be chosen one by one."""

    def __init__(
        self,
        game: ExtensiveGame,
        *,
        plus: bool = False,
        regret_matching_plus: bool | None = None,
        linear_averaging: bool | None = None,
    ) -> None:
        self.game = game
        self.regret_matching_plus = plus if regret_matching_plus is None else regret_matching_plus
        self.linear_averaging = plus if linear_averaging is None else linear_averaging
        self.iteration = 0
        self._regrets = np.zeros(game.legal.shape)
        self._cumulative = np.zeros(game.legal.shape)
        self._current = uniform_policy(game)

    def step(self) -> None:
        """One iteration: update player 0, then player 1 against player 0's new policy."""
        self.iteration += 1
        weight = float(self.iteration) if self.linear_averaging else 1.0
        for player in (0, 1):
            rows = self.game.infostate_player == player
            regrets, own_reach = counterfactual_regrets(self.game, self._current, player)
            self._regrets[rows] += regrets[rows]
            if self.regret_matching_plus:
                self._regrets[rows] = np.maximum(self._regrets[rows], 0.0)
            self._cumulative[rows] += weight * own_reach[rows, None] * self._current[rows]
            self._current = regret_matching(self._regrets, self.game.legal)

    def run(self, iterations: int) -> np.ndarray:
        """``iterations`` more steps; returns the average policy."""
        for _ in range(_count(iterations)):
            self.step()
        return self.average_policy()

    def current_policy(self) -> np.ndarray:
        """The policy regret matching plays next (a copy)."""
        return np.array(self._current)

    def average_policy(self) -> np.ndarray:
        """The reach-weighted average of the policies played so far: the one that converges to equilibrium."""
        return _average(self._cumulative, self.game.legal)


class CFRBRSolver:
    """CFR-BR: each iteration computes both players' exact best responses to the current policy, then updates each
    player's regrets against the other's best response; the current policy is recomputed once both are done."""

    def __init__(
        self, game: ExtensiveGame, *, regret_matching_plus: bool = False, linear_averaging: bool = False
    ) -> None:
        self.game = game
        self.regret_matching_plus = regret_matching_plus
        self.linear_averaging = linear_averaging
        self.iteration = 0
        self._regrets = np.zeros(game.legal.shape)
        self._cumulative = np.zeros(game.legal.shape)
        self._current = uniform_policy(game)

    def step(self) -> None:
        self.iteration += 1
        weight = float(self.iteration) if self.linear_averaging else 1.0
        # responses[j]: the current policy with player j's rows replaced by its best response to it
        responses = [_best_response(self.game, self._current, j).policy for j in (0, 1)]
        for player in (0, 1):
            rows = self.game.infostate_player == player
            regrets, own_reach = counterfactual_regrets(self.game, responses[1 - player], player)
            self._regrets[rows] += regrets[rows]
            if self.regret_matching_plus:
                self._regrets[rows] = np.maximum(self._regrets[rows], 0.0)
            self._cumulative[rows] += weight * own_reach[rows, None] * self._current[rows]
        self._current = regret_matching(self._regrets, self.game.legal)

    def run(self, iterations: int) -> np.ndarray:
        for _ in range(_count(iterations)):
            self.step()
        return self.average_policy()

    def current_policy(self) -> np.ndarray:
        """The current policy; CFR-BR's converges too (with high probability)."""
        return np.array(self._current)

    def average_policy(self) -> np.ndarray:
        return _average(self._cumulative, self.game.legal)


class XFPSolver:
    """Extensive-form fictitious play: at iteration ``t`` both players best-respond to the average policy, and the
    average moves to the behaviour policy of playing the old average with probability ``1 - 1/(t+1)`` and the best
    response with probability ``1/(t+1)``. Starts from the uniform policy."""

    def __init__(self, game: ExtensiveGame) -> None:
        self.game = game
        self.iteration = 0
        self._average = uniform_policy(game)

    def step(self) -> None:
        self.iteration += 1
        response = self._average.copy()
        for j in (0, 1):  # each player's best response to the average; rows of the other player are untouched
            rows = self.game.infostate_player == j
            response[rows] = _best_response(self.game, self._average, j).policy[rows]
        alpha = 1.0 / (self.iteration + 1)
        self._average = mix_policies(self.game, [self._average, response], [1.0 - alpha, alpha])

    def run(self, iterations: int) -> np.ndarray:
        for _ in range(_count(iterations)):
            self.step()
        return self.average_policy()

    def average_policy(self) -> np.ndarray:
        return np.array(self._average)


def _count(iterations: int) -> int:
    if not isinstance(iterations, (int, np.integer)) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    return int(iterations)


#: The solvers known by name, each built from a game.
SOLVERS = {
    "cfr": lambda game: CFRSolver(game),
    "cfr+": lambda game: CFRSolver(game, plus=True),
    "cfr-br": lambda game: CFRBRSolver(game),
    "xfp": lambda game: XFPSolver(game),
}
