"""OpenSpiel games as batched marlkit envs: ``from_openspiel("kuhn_poker")``, or ``marlkit.make("os:kuhn_poker")``.

OpenSpiel (``open-spiel`` on PyPI, imported as ``pyspiel``) is optional and imported only here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.core.errors import did_you_mean
from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs
from marlkit.envs.turns import TurnBased


def from_openspiel(game: Any, num_envs: int = 1, seed: int | None = None, **params: Any) -> OpenSpielEnv:
    """``num_envs`` copies of an OpenSpiel game as one turn-based marlkit env.

    ``game`` is a ``pyspiel.Game`` or a name for ``pyspiel.load_game`` (``"tic_tac_toe"``, ``"leduc_poker"``,
    ``"kuhn_poker(players=3)"``); ``params`` are game parameters (``players=3``). See ``OpenSpielEnv``.
    """
    return OpenSpielEnv(game, num_envs, seed, **params)


class OpenSpielEnv(TurnBased, MultiAgentEnv):
    """An OpenSpiel sequential-move game under marlkit's turn-based contract (``marlkit.envs.base``), its copies
    stepped in a Python loop (each is a ``pyspiel.State``).

    * Agents ``player_0``.. ``player_{n-1}``, one group ``player``. The mover is ``current_player()``; chance nodes
      are sampled from ``chance_outcomes()`` with the env's generator, inside ``reset`` and ``step``, so every
      ``to_play`` is a player.
    * Actions: ``Discrete(num_distinct_actions() + 1)``, the last being PASS; the mover's mask is
      ``legal_actions_mask()``. With ``validate_actions`` off an illegal move becomes the mover's first legal one.
    * Observations: each player's ``information_state_tensor`` (or ``observation_tensor`` for games without one).
      State: every player's observation, concatenated.
    * Rewards: each player's ``rewards()`` after every action and chance outcome, summed per step (for games that
      pay only at the end, the returns at the step that ends the game, whoever moved).
    """

    def __init__(self, game: Any, num_envs: int = 1, seed: int | None = None, **params: Any) -> None:
        try:
            import pyspiel
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("from_openspiel needs OpenSpiel: pip install open-spiel") from e
        super().__init__(num_envs, seed)
        if isinstance(game, str):
            try:
                game = pyspiel.load_game(game, params) if params else pyspiel.load_game(game)
            except pyspiel.SpielError as e:
                hint = did_you_mean(game.partition("(")[0], pyspiel.registered_names())
                raise ValueError(
                    f"OpenSpiel cannot load game {game!r} with parameters {params}{hint}: {str(e).strip()} "
                    "(pyspiel.registered_names() lists the games)"
                ) from None
        elif params:
            raise TypeError("game parameters apply only when the game is given by name")
        if not isinstance(game, pyspiel.Game):
            raise TypeError(f"from_openspiel takes a pyspiel.Game or a game name, got {type(game).__name__}")
        kind = game.get_type()
        name = kind.short_name
        if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
            raise ValueError(f"{name} has {kind.dynamics} dynamics; from_openspiel supports sequential-move games")
        if kind.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
            raise ValueError(f"{name} samples its own chance events; from_openspiel needs explicit chance outcomes")
        if kind.provides_information_state_tensor:
            self._tensor, shape = "information_state_tensor", game.information_state_tensor_shape()
        elif kind.provides_observation_tensor:
            self._tensor, shape = "observation_tensor", game.observation_tensor_shape()
        else:
            raise ValueError(f"{name} provides neither an information-state nor an observation tensor")
        self.game = game
        self.metadata = {**MultiAgentEnv.metadata, "name": name}
        self.n_players = game.num_players()
        self.n_moves = game.num_distinct_actions()
        size = int(np.prod(shape))
        low, high = (-np.inf, np.inf)
        obs = spaces.Box(low, high, (size,), np.float32)
        players = tuple(f"player_{p}" for p in range(self.n_players))
        self._set_spaces(
            {"player": players},
            {"player": obs},
            {"player": spaces.Discrete(self.n_moves + 1)},
            spaces.Box(low, high, (size * self.n_players,), np.float32),
        )
        n = self.num_envs
        self.states: list[Any] = [None] * n
        self._obs = np.zeros((n, self.n_players, size), np.float32)
        self._mover = np.full(n, -1, np.int64)
        self._legal = np.ones((n, self.n_moves), bool)

    # -------------------------------------------------------------------------------------------------- hooks
    def _reset_copies(self, mask: np.ndarray) -> None:
        for c in np.flatnonzero(mask).tolist():
            self.states[c] = self.game.new_initial_state()
            self._chance(self.states[c])
            self._read(c)

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        moves, legal = self._moves(actions)
        rewards = np.zeros((self.num_envs, self.n_players))
        term = np.zeros((self.num_envs, self.n_players), bool)
        for c, state in enumerate(self.states):  # the bridge's one loop over copies: each is a pyspiel.State
            move = int(moves[c]) if legal[c] else int(np.flatnonzero(self._legal[c])[0])
            state.apply_action(move)
            rewards[c] = state.rewards()
            rewards[c] += self._chance(state)
            term[c] = state.is_terminal()
            self._read(c)
        return {"player": rewards}, {"player": term}, {}

    def _to_play(self) -> np.ndarray:
        return self._mover

    def _legal_moves(self) -> np.ndarray:
        return self._legal

    def _observe(self) -> Obs:
        return {"player": self._obs.copy()}

    def _state(self) -> np.ndarray:
        return self._obs.reshape(self.num_envs, -1).copy()

    # ------------------------------------------------------------------------------------------------ helpers
    def _chance(self, state: Any) -> np.ndarray:
        """Play out chance nodes with the env's generator; the rewards they paid."""
        paid = np.zeros(self.n_players)
        while state.is_chance_node():
            outcomes, probs = zip(*state.chance_outcomes())
            p = np.asarray(probs, dtype=np.float64)
            state.apply_action(int(outcomes[int(self.np_random.choice(len(outcomes), p=p / p.sum()))]))
            paid += state.rewards()
        return paid

    def _read(self, c: int) -> None:
        state = self.states[c]
        for p in range(self.n_players):
            self._obs[c, p] = getattr(state, self._tensor)(p)
        if state.is_terminal():
            self._mover[c] = -1
        else:
            self._mover[c] = state.current_player()
            self._legal[c] = np.asarray(state.legal_actions_mask(), dtype=bool)[: self.n_moves]
