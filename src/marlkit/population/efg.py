"""Two-player zero-sum extensive-form games with chance, as arrays: the game tree, tabular policies, exact values,
best responses, NashConv and exploitability.

A game is written as its rules (``GameRules``: who moves, the legal actions, chance's outcomes, the information
state a player sees, the payoffs) and walked once into an ``ExtensiveGame``: every history is a node, every move an
edge, and the edges are grouped by the depth of the node they leave. Every computation is then a handful of NumPy
passes over those groups — reach probabilities from the root down, values from the leaves up — instead of a Python
walk of the tree. Kuhn poker and Leduc hold'em are written this way in ``poker.py``.

A tabular policy is an array ``(n_infostates, n_actions)``: row ``s`` is the mixture over actions of the player who
acts at information state ``s`` (``game.infostate_keys[s]``), zero on illegal actions — the layout of OpenSpiel's
``action_probability_array``. One array holds both players' rows; a player's strategy is its own rows.

NashConv is the sum over both players of what a best response gains over the profile; exploitability is NashConv
divided by 2 (OpenSpiel's conventions). Values are player 0's unless named otherwise; player 1 gets the negative.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

CHANCE = -1
"""``ExtensiveGame.node_player`` of a chance node."""
TERMINAL = -2
"""``ExtensiveGame.node_player`` of a terminal node."""

_TIE = 1e-12  # actions whose values are this close (relative) to the best count as tied; the lowest-numbered wins

S = TypeVar("S", bound=Hashable)
Level = tuple[int, int, np.ndarray, np.ndarray]


class GameRules(Protocol[S]):
    """The rules of a two-player zero-sum game with chance, as pure functions of an immutable state."""

    name: str
    num_actions: int
    """The players' actions are numbered ``0 .. num_actions - 1``; chance's outcomes are any non-negative numbers."""

    def initial(self) -> S: ...
    def is_terminal(self, state: S) -> bool: ...
    def returns(self, state: S) -> float:
        """Player 0's payoff at a terminal state (player 1 gets the negative)."""
        ...

    def player(self, state: S) -> int:
        """0 or 1 for a decision, ``CHANCE`` for a chance node."""
        ...

    def chance_outcomes(self, state: S) -> list[tuple[int, float]]: ...
    def legal_actions(self, state: S) -> list[int]: ...
    def infostate(self, state: S) -> str:
        """What the player to move knows: equal strings for histories it cannot tell apart (perfect recall)."""
        ...

    def features(self, state: S) -> list[float]:
        """The information state as a fixed-length vector, for networks (equal for equal ``infostate`` strings)."""
        ...

    def apply(self, state: S, action: int) -> S: ...


@dataclass(frozen=True, eq=False)
class ExtensiveGame:
    """A game tree as arrays (built by ``build_game``). Nodes are numbered in depth-first order from the root (0);
    edges are sorted by the depth of their parent, then by parent, then by action."""

    name: str
    num_actions: int
    node_player: np.ndarray
    """``(n_nodes,)``: 0, 1, ``CHANCE`` or ``TERMINAL``."""
    node_infostate: np.ndarray
    """``(n_nodes,)``: the information state of a decision node, -1 elsewhere."""
    node_depth: np.ndarray
    utility: np.ndarray
    """``(n_nodes,)``: player 0's payoff at terminal nodes, 0 elsewhere."""
    histories: tuple[tuple[int, ...], ...]
    """The actions (chance's included) from the root to each node."""
    edge_parent: np.ndarray
    edge_child: np.ndarray
    edge_action: np.ndarray
    edge_owner: np.ndarray
    """``(n_edges,)``: the player who chooses the edge, 2 for chance."""
    edge_chance: np.ndarray
    """``(n_edges,)``: chance's probability of the edge, 1 on the players' edges."""
    levels: tuple[Level, ...]
    """Per depth of parent, shallow first: ``(start, stop, parents, first)`` — the edges ``start:stop``, their
    distinct parents, and the offset (within the slice) of each parent's first edge, for ``np.add.reduceat``."""
    infostate_keys: tuple[str, ...]
    infostate_player: np.ndarray
    legal: np.ndarray
    """``(n_infostates, num_actions)`` bool."""
    infostate_node: np.ndarray
    """``(n_infostates,)``: one node of each information state (its player's own reach is the same at every one)."""
    features: np.ndarray
    """``(n_infostates, n_features)`` float32: each information state as its rules' feature vector."""

    @property
    def num_infostates(self) -> int:
        return len(self.infostate_keys)

    @property
    def num_nodes(self) -> int:
        return len(self.node_player)

    @functools.cached_property
    def infostate_index(self) -> dict[str, int]:
        """Information-state string -> row of a tabular policy."""
        return {k: i for i, k in enumerate(self.infostate_keys)}

    @functools.cached_property
    def child_table(self) -> np.ndarray:
        """``(n_nodes, max action + 1)``: the child a move (or chance's outcome) leads to, -1 where there is none."""
        table = np.full((self.num_nodes, int(self.edge_action.max()) + 1), -1, dtype=np.int64)
        table[self.edge_parent, self.edge_action] = self.edge_child
        return table

    @functools.cached_property
    def edge_policy_index(self) -> np.ndarray:
        """``(n_edges,)``: where each player's edge sits in a flattened policy (0 for chance's edges)."""
        info = self.node_infostate[self.edge_parent]
        return np.where(self.edge_owner == 2, 0, np.maximum(info, 0) * self.num_actions + self.edge_action)

    def __repr__(self) -> str:
        return (
            f"ExtensiveGame({self.name!r}: {self.num_nodes} nodes, {self.num_infostates} information states, "
            f"{self.num_actions} actions)"
        )


def build_game(rules: GameRules[S]) -> ExtensiveGame:
    """Walk the whole tree of ``rules`` once and return it as arrays. Checks that every information state belongs
    to one player, has the same legal actions and lies at one depth at all of its histories (true whenever both
    players see how many moves have been made, as in poker), which the level-by-level passes rely on."""
    player: list[int] = []
    infostate: list[int] = []
    depth: list[int] = []
    utility: list[float] = []
    histories: list[tuple[int, ...]] = []
    edges: list[tuple[int, int, int, int, float, int]] = []  # (depth, parent, action, child, chance prob, owner)
    keys: dict[str, int] = {}
    key_player: list[int] = []
    key_legal: list[list[int]] = []
    key_depth: list[int] = []
    key_node: list[int] = []
    key_features: list[list[float]] = []
    stack: list[tuple[S, tuple[int, ...], int, int, float, int]] = [(rules.initial(), (), -1, -1, 1.0, -1)]
    while stack:  # depth-first; a node's number is the order it is popped
        state, history, parent, action, prob, owner = stack.pop()
        node = len(player)
        d = len(history)
        if parent >= 0:
            edges.append((d - 1, parent, action, node, prob, owner))
        depth.append(d)
        histories.append(history)
        if rules.is_terminal(state):
            player.append(TERMINAL)
            infostate.append(-1)
            utility.append(float(rules.returns(state)))
            continue
        utility.append(0.0)
        p = rules.player(state)
        if p == CHANCE:
            player.append(CHANCE)
            infostate.append(-1)
            moves = [(a, float(q), 2) for a, q in rules.chance_outcomes(state)]
        else:
            if p not in (0, 1):
                raise ValueError(f"{rules.name}: player must be 0, 1 or CHANCE, got {p!r} after {history}")
            key, legal = rules.infostate(state), sorted(rules.legal_actions(state))
            if key not in keys:
                keys[key] = len(keys)
                key_player.append(p)
                key_legal.append(legal)
                key_depth.append(d)
                key_node.append(node)
                key_features.append(list(rules.features(state)))
            s = keys[key]
            if (key_player[s], key_legal[s], key_depth[s]) != (p, legal, d):
                raise ValueError(
                    f"{rules.name}: information state {key!r} is reached by player {key_player[s]} with legal actions "
                    f"{key_legal[s]} at depth {key_depth[s]} and by player {p} with {legal} at depth {d}; each must "
                    f"be one player's, with one set of legal actions, at one depth"
                )
            player.append(p)
            infostate.append(s)
            moves = [(a, 1.0, p) for a in legal]
        for a, q, o in reversed(moves):  # reversed, so the lowest action is popped (numbered) first
            if not (0 <= a < rules.num_actions or (o == 2 and a >= 0)):
                raise ValueError(f"{rules.name}: action {a} after {history} is outside 0..{rules.num_actions - 1}")
            stack.append((rules.apply(state, a), (*history, a), node, a, q, o))
    edges.sort(key=lambda e: (e[0], e[1], e[2]))
    e = np.array([(pa, a, c, o) for _, pa, a, c, _, o in edges], dtype=np.int64).reshape(-1, 4)
    edge_depth = np.array([x[0] for x in edges], dtype=np.int64)
    levels = []
    for d in np.unique(edge_depth):
        start, stop = np.searchsorted(edge_depth, [d, d + 1])
        parents, first = np.unique(e[start:stop, 0], return_index=True)
        levels.append((int(start), int(stop), parents, first))
    legal_mask = np.zeros((len(keys), rules.num_actions), dtype=bool)
    for s, legal in enumerate(key_legal):
        legal_mask[s, legal] = True
    game = ExtensiveGame(
        name=rules.name,
        num_actions=rules.num_actions,
        node_player=np.array(player, dtype=np.int64),
        node_infostate=np.array(infostate, dtype=np.int64),
        node_depth=np.array(depth, dtype=np.int64),
        utility=np.array(utility),
        histories=tuple(histories),
        edge_parent=e[:, 0],
        edge_child=e[:, 2],
        edge_action=e[:, 1],
        edge_owner=e[:, 3],
        edge_chance=np.array([x[4] for x in edges]),
        levels=tuple(levels),
        infostate_keys=tuple(keys),
        infostate_player=np.array(key_player, dtype=np.int64),
        legal=legal_mask,
        infostate_node=np.array(key_node, dtype=np.int64),
        features=np.array(key_features, dtype=np.float32),
    )
    for name in ("node_player", "node_infostate", "node_depth", "utility", "edge_parent", "edge_child"):
        getattr(game, name).flags.writeable = False
    return game


# ------------------------------------------------------------------------------------------------------ policies
def uniform_policy(game: ExtensiveGame) -> np.ndarray:
    """Every information state's uniform mixture over its legal actions."""
    return np.asarray(game.legal / game.legal.sum(axis=1, keepdims=True))


def random_policy(game: ExtensiveGame, seed: int) -> np.ndarray:
    """A policy drawn uniformly at random from each information state's simplex (Dirichlet(1) over legal actions)."""
    rng = np.random.default_rng(seed)
    x = np.where(game.legal, rng.exponential(size=game.legal.shape), 0.0)
    return np.asarray(x / x.sum(axis=1, keepdims=True))


def check_policy(game: ExtensiveGame, policy: npt.ArrayLike, tol: float = 1e-6) -> np.ndarray:
    """``policy`` as a float array ``(n_infostates, num_actions)``, checked: non-negative, zero on illegal actions
    and summing to 1 at every information state (within ``tol``)."""
    x = np.asarray(policy, dtype=np.float64)
    shape = (game.num_infostates, game.num_actions)
    if x.shape != shape:
        raise ValueError(f"a policy of {game.name} has shape {shape} (information states x actions), got {x.shape}")
    bad = ~np.isfinite(x).all(axis=1) | (x < -tol).any(axis=1) | (np.abs(x * ~game.legal) > tol).any(axis=1)
    bad |= np.abs(x.sum(axis=1) - 1.0) > tol
    if bad.any():
        s = int(np.argmax(bad))
        raise ValueError(
            f"the policy at information state {game.infostate_keys[s]!r} must be non-negative, zero on illegal "
            f"actions and sum to 1 over the legal ones {np.flatnonzero(game.legal[s]).tolist()}, got {x[s].tolist()}"
        )
    return x


def _edge_probs(game: ExtensiveGame, policy: np.ndarray) -> np.ndarray:
    """The probability of every edge: chance's, or the policy's at the parent's information state."""
    return np.where(game.edge_owner == 2, game.edge_chance, policy.ravel()[game.edge_policy_index])


def reach_probabilities(game: ExtensiveGame, policy: npt.ArrayLike) -> np.ndarray:
    """``(3, n_nodes)``: each node's probability of being reached through player 0's moves, player 1's moves and
    chance's (their product is the probability of the node under the profile)."""
    return _reach(game, _edge_probs(game, check_policy(game, policy)))


def _reach(game: ExtensiveGame, p: np.ndarray) -> np.ndarray:
    reach = np.ones((3, game.num_nodes))
    for start, stop, _, _ in game.levels:
        parent, child, owner = game.edge_parent[start:stop], game.edge_child[start:stop], game.edge_owner[start:stop]
        for k in range(3):
            reach[k, child] = reach[k, parent] * np.where(owner == k, p[start:stop], 1.0)
    return reach


def _backup(game: ExtensiveGame, level: Level, weights: np.ndarray, values: np.ndarray) -> None:
    """Set each parent of the level's edges to the sum of its children's values times ``weights`` (one per edge of
    the level), in place."""
    start, stop, parents, first = level
    values[parents] = np.add.reduceat(weights * values[game.edge_child[start:stop]], first)


def node_values(game: ExtensiveGame, policy: npt.ArrayLike) -> np.ndarray:
    """Player 0's expected payoff from every node on when both players follow ``policy``, shape ``(n_nodes,)``."""
    return _values(game, _edge_probs(game, check_policy(game, policy)))


def _values(game: ExtensiveGame, p: np.ndarray) -> np.ndarray:
    values = np.array(game.utility)
    for level in reversed(game.levels):
        _backup(game, level, p[level[0] : level[1]], values)
    return values


def expected_value(game: ExtensiveGame, policy: npt.ArrayLike) -> float:
    """Player 0's expected payoff when both players follow ``policy`` (player 1's is its negative)."""
    return float(node_values(game, policy)[0])


def mix_policies(game: ExtensiveGame, policies: Sequence[npt.ArrayLike], weights: npt.ArrayLike) -> np.ndarray:
    """The behaviour policy that plays like choosing ``policies[k]`` with probability ``weights[k]`` once, before
    the game, and following it throughout (Kuhn's theorem): at each information state the policies' mixtures
    weighted by ``weights[k]`` times the probability that the state's player's own moves under ``policies[k]`` reach
    it. Where no policy reaches a state its policies are averaged by ``weights`` alone."""
    xs = [check_policy(game, x) for x in policies]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(xs),) or len(xs) == 0 or (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be one non-negative number per policy ({len(xs)}) summing to 1, got {w}")
    own = np.stack([own_reach(game, x) for x in xs])
    return _mix(np.stack(xs), own, w)


def own_reach(game: ExtensiveGame, policy: np.ndarray) -> np.ndarray:
    """``(n_infostates,)``: the probability that the moves of each information state's own player under ``policy``
    lead to it (the same at all of its histories, by perfect recall)."""
    return np.asarray(_reach(game, _edge_probs(game, policy))[game.infostate_player, game.infostate_node])


def _mix(policies: np.ndarray, own: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``mix_policies`` of stacked policies ``(K, n_infostates, num_actions)`` whose ``own_reach`` is ``own``."""
    realisation = weights[:, None] * own  # (K, n_infostates)
    total = realisation.sum(axis=0)
    share = np.where(total > 0, realisation / np.where(total > 0, total, 1.0), weights[:, None])
    return np.asarray(np.einsum("ks,ksa->sa", share, policies))


# ------------------------------------------------------------------------------------------------ best responses
class BestResponse(NamedTuple):
    policy: np.ndarray
    """The input profile with the responder's rows replaced by its pure best response."""
    value: float
    """What the best response earns the responder (in its own payoff)."""


def best_response(game: ExtensiveGame, policy: npt.ArrayLike, player: int) -> BestResponse:
    """An exact pure best response of ``player`` to the other player's part of ``policy``. At each of the
    responder's information states it picks the action whose counterfactual value (summed over the state's
    histories, weighted by the opponent's and chance's reach) is highest, the lowest-numbered among ties."""
    x = check_policy(game, policy)
    if player not in (0, 1):
        raise ValueError(f"player must be 0 or 1, got {player!r}")
    return _best_response(game, x, player)


def _best_response(game: ExtensiveGame, x: np.ndarray, player: int) -> BestResponse:
    p = _edge_probs(game, x)
    opponent_reach = np.prod(np.delete(_reach(game, p), player, axis=0), axis=0)  # the other player's and chance's
    sign = 1.0 if player == 0 else -1.0
    values = sign * game.utility
    response = x.copy()
    mine = game.edge_owner == player
    for level in reversed(game.levels):
        sl = slice(level[0], level[1])
        w = p[sl].copy()
        own = mine[sl]
        if own.any():  # the responder's decisions at this depth: choose, then back up the chosen child
            parent, action = game.edge_parent[sl][own], game.edge_action[sl][own]
            info = game.node_infostate[parent]
            q = np.zeros_like(response)
            np.add.at(q, (info, action), opponent_reach[parent] * values[game.edge_child[sl][own]])
            states = np.unique(info)
            best = _argmax_lowest(np.where(game.legal[states], q[states], -np.inf))
            response[states] = 0.0
            response[states, best] = 1.0
            w[own] = response[info, action]
        _backup(game, level, w, values)
    return BestResponse(response, float(values[0]))


def _argmax_lowest(q: np.ndarray) -> np.ndarray:
    """Per row, the lowest column within a relative ``_TIE`` of the row's maximum."""
    top = q.max(axis=1, keepdims=True)
    return np.asarray(np.argmax(q >= top - _TIE * np.maximum(1.0, np.abs(top)), axis=1))


def nash_conv(game: ExtensiveGame, policy: npt.ArrayLike) -> float:
    """Sum over both players of what a best response earns beyond the profile's value; 0 exactly at a Nash
    equilibrium."""
    x = check_policy(game, policy)
    value = float(_values(game, _edge_probs(game, x))[0])
    return _best_response(game, x, 0).value - value + _best_response(game, x, 1).value + value


def exploitability(game: ExtensiveGame, policy: npt.ArrayLike) -> float:
    """NashConv / 2: the mean of what each player's best responder wins beyond the game's value."""
    return nash_conv(game, policy) / 2


# --------------------------------------------------------------------------------------------------- sampling
class Move(NamedTuple):
    games: np.ndarray
    """Which of the games played moved (indices into the batch)."""
    states: np.ndarray
    """The information state each was at."""
    actions: np.ndarray


class Played(NamedTuple):
    moves: list[list[Move]]
    """Per player, its moves in the order made: one ``Move`` per step of the batch at which any game had it move."""
    payoff: np.ndarray
    """``(n,)``: player 0's payoff of each game."""


Actor = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""``act(player, games, states) -> probabilities (len(games), num_actions)``: how ``player`` moves in each game."""


def play(game: ExtensiveGame, act: Actor, n: int, rng: np.random.Generator) -> Played:
    """Play ``n`` games at once, as arrays walking the tree: chance samples its outcomes, and each player samples
    its moves from ``act``."""
    cdf = _chance_cdf(game)
    node = np.zeros(n, dtype=np.int64)
    moves: list[list[Move]] = [[], []]
    while True:
        kind = game.node_player[node]
        if (kind == TERMINAL).all():
            return Played(moves, game.utility[node])
        at_chance = np.flatnonzero(kind == CHANCE)
        if len(at_chance):
            u = rng.random(len(at_chance))[:, None]
            outcome = np.minimum((u >= cdf[node[at_chance]]).sum(axis=1), cdf.shape[1] - 1)
            node[at_chance] = game.child_table[node[at_chance], outcome]
        for p in (0, 1):
            games = np.flatnonzero(kind == p)
            if not len(games):
                continue
            states = game.node_infostate[node[games]]
            probs = act(p, games, states)
            actions = (rng.random(len(games))[:, None] >= np.cumsum(probs, axis=1)).sum(axis=1)
            actions = np.minimum(actions, game.num_actions - 1)  # rounding of the cumulative sum
            actions = np.where(game.legal[states, actions], actions, np.argmax(probs, axis=1))
            moves[p].append(Move(games, states, actions))
            node[games] = game.child_table[node[games], actions]


def _chance_cdf(game: ExtensiveGame) -> np.ndarray:
    """Per node, the cumulative probabilities of chance's outcomes by outcome number (zeros at other nodes)."""
    probs = np.zeros(game.child_table.shape)
    chance = game.edge_owner == 2
    probs[game.edge_parent[chance], game.edge_action[chance]] = game.edge_chance[chance]
    return np.cumsum(probs, axis=1)
