"""Turn-based PettingZoo AEC envs (board and card games of ``pettingzoo.classic``) as batched marlkit envs.

``from_pettingzoo`` builds one of these when its env is an AEC env that cannot be stepped as simultaneous moves
(``metadata["is_parallelizable"]`` false): tic-tac-toe, connect four, Leduc hold'em, chess, ... The marlkit side is
the turn-based contract of ``marlkit.envs.base``; PettingZoo is imported by ``marlkit.envs.pettingzoo``, which
builds this class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs
from marlkit.envs.grouping import checked_groups, default_groups
from marlkit.envs.turns import TurnBased


class PettingZooTurnEnv(TurnBased, MultiAgentEnv):
    """``num_envs`` copies of a turn-based PettingZoo AEC env, stepped in a Python loop over copies.

    * The mover is the AEC env's ``agent_selection`` (``info["to_play"]``); its action goes to the env, the others'
      (PASS: the last action, ``Discrete(n + 1)`` for an AEC ``Discrete(n)``) do not.
    * Observations: each agent's ``observe(agent)`` at every step (for a ``Dict`` of ``observation`` and
      ``action_mask`` the ``observation``), flattened to float32. The mover's legal moves are the observation's
      ``action_mask`` (or ``infos[agent]["action_mask"]``; all moves when the env gives neither).
    * Rewards: after each move every agent's ``rewards[agent]`` (PettingZoo's rewards of the last step), so the
      outcome reaches both players at the move that ends the game. ``terminated``/``truncated`` are the env's
      ``terminations``/``truncations``; the game ends when every agent is done. Agents done before the others (a
      player knocked out) are stepped with ``None`` as PettingZoo requires, their PASS standing for them.
    * State: every agent's observation, concatenated in agent order.
    * With ``validate_actions`` off a mover's illegal move is replaced by its first legal move (PettingZoo's classic
      games would otherwise end the game with a penalty).
    * ``reset(seed=s)`` resets copy ``i`` with seed ``s + i``; automatic resets pass no seed.
    """

    def __init__(
        self,
        env_fn: Callable[[], Any],
        num_envs: int = 1,
        seed: int | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        first: Any = None,
    ) -> None:
        super().__init__(num_envs, seed)
        self.envs = [first if (c == 0 and first is not None) else env_fn() for c in range(self.num_envs)]
        env = self.envs[0]
        name = env.metadata.get("name", type(env).__name__)
        self.metadata = {**MultiAgentEnv.metadata, "name": name}
        possible = list(env.possible_agents)
        act_in = {a: env.action_space(a) for a in possible}
        bad = {a: s for a, s in act_in.items() if not isinstance(s, spaces.Discrete) or int(s.start) != 0}
        if bad:
            raise TypeError(f"{name}: a turn-based env needs Discrete actions starting at 0; got {bad}")
        moves = {int(s.n) for s in act_in.values()}
        if len(moves) != 1:
            raise TypeError(f"{name}: every player needs the same number of moves, got {sorted(moves)}")
        self.n_moves = moves.pop()
        self._obs_in = {a: env.observation_space(a) for a in possible}
        self._dict_mask = {
            a: isinstance(s, spaces.Dict) and set(s.spaces) >= {"observation", "action_mask"}
            for a, s in self._obs_in.items()
        }
        obs_spaces = {}
        for a, s in self._obs_in.items():
            inner = s["observation"] if self._dict_mask[a] else s
            if not inner.is_np_flattenable:
                raise TypeError(f"{name}: agent {a!r} observes {inner}, which cannot be flattened into an array")
            flat = spaces.flatten_space(inner)
            assert isinstance(flat, spaces.Box)
            obs_spaces[a] = spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32), dtype=np.float32)
        act_spaces = {a: spaces.Discrete(self.n_moves + 1) for a in possible}
        grouping = (
            default_groups(possible, obs_spaces, act_spaces)
            if groups is None
            else checked_groups(groups, possible, obs_spaces, act_spaces)
        )
        ordered = [obs_spaces[a] for ids in grouping.values() for a in ids]
        state = spaces.Box(
            np.concatenate([s.low for s in ordered]), np.concatenate([s.high for s in ordered]), dtype=np.float32
        )
        self._set_spaces(
            grouping,
            {g: obs_spaces[ids[0]] for g, ids in grouping.items()},
            {g: act_spaces[ids[0]] for g, ids in grouping.items()},
            state,
        )
        self._index = {a: k for k, a in enumerate(self.agents)}
        self._slot = {a: (g, i) for g, ids in self.groups.items() for i, a in enumerate(ids)}
        e = self.num_envs
        self._obs = {
            g: np.zeros((e, len(ids), *self.group_observation_space(g).shape), np.float32)
            for g, ids in self.groups.items()
        }
        self._mover = np.full(e, -1, np.int64)
        self._legal = np.ones((e, self.n_moves), bool)
        self._trunc = {g: np.zeros((e, len(ids)), bool) for g, ids in self.groups.items()}
        self._reset_seed: int | None = None

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        if seed is None and self._needs_reset:
            seed = self._seed
        self._reset_seed = seed
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._reset_seed = None

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # -------------------------------------------------------------------------------------------------- hooks
    def _reset_copies(self, mask: np.ndarray) -> None:
        for c in np.flatnonzero(mask).tolist():
            env = self.envs[c]
            env.reset(seed=None if self._reset_seed is None else int(self._reset_seed) + int(c))
            if set(env.agents) != set(self._slot):
                raise ValueError(
                    f"copy {c} of {self.metadata['name']} reset with agents {sorted(env.agents)}; every agent of "
                    f"possible_agents {sorted(self._slot)} must play from the start"
                )
            self._read(c)

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        moves, legal = self._moves(actions)
        n = self.num_envs
        rewards = {g: np.zeros((n, len(ids))) for g, ids in self.groups.items()}
        term = {g: np.zeros((n, len(ids)), bool) for g, ids in self.groups.items()}
        trunc = {g: np.zeros((n, len(ids)), bool) for g, ids in self.groups.items()}
        for c, env in enumerate(self.envs):  # the bridge's one loop over copies: each is a Python object
            move = int(moves[c]) if legal[c] else int(np.flatnonzero(self._legal[c])[0])
            env.step(move)
            got = {a: float(env.rewards.get(a, 0.0)) for a in self._slot}
            while env.agents and self._done(env, env.agent_selection) and not self._over(env):
                env.step(None)  # a player out of the game: PettingZoo removes it with a None step
                for a in self._slot:
                    got[a] += float(env.rewards.get(a, 0.0))
            for a, (g, i) in self._slot.items():
                rewards[g][c, i] = got[a]
                term[g][c, i] = bool(env.terminations.get(a, a not in env.agents))
                trunc[g][c, i] = bool(env.truncations.get(a, False)) and not term[g][c, i]
            self._read(c)
        self._trunc = trunc
        return rewards, term, {}

    def _truncated(self) -> dict[str, np.ndarray]:
        return self._trunc

    def _to_play(self) -> np.ndarray:
        return self._mover

    def _legal_moves(self) -> np.ndarray:
        return self._legal

    def _observe(self) -> Obs:
        return {g: o.copy() for g, o in self._obs.items()}

    def _state(self) -> np.ndarray:
        return np.concatenate([self._obs[g].reshape(self.num_envs, -1) for g in self.groups], axis=1)

    # ------------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def _done(env: Any, agent: str) -> bool:
        return bool(env.terminations.get(agent, False) or env.truncations.get(agent, False))

    def _over(self, env: Any) -> bool:
        return not env.agents or all(self._done(env, a) for a in env.agents)

    def _read(self, c: int) -> None:
        """Observations of every agent of copy ``c``, and its mover and legal moves (none once the game is over)."""
        env = self.envs[c]
        mover = None if self._over(env) else env.agent_selection
        for a, (g, i) in self._slot.items():
            obs = env.observe(a)
            mask = None
            if self._dict_mask[a]:
                mask, obs = obs["action_mask"], obs["observation"]
                inner = self._obs_in[a]["observation"]
            else:
                inner = self._obs_in[a]
            self._obs[g][c, i] = np.asarray(spaces.flatten(inner, obs), dtype=np.float32)
            if a == mover:
                info_mask = env.infos.get(a, {}).get("action_mask") if isinstance(env.infos.get(a), dict) else None
                mask = mask if mask is not None else info_mask
                self._legal[c] = True if mask is None else np.asarray(mask, dtype=bool)
                if not self._legal[c].any():
                    raise ValueError(f"copy {c}: {self.metadata['name']} gives agent {a!r} no legal move")
        self._mover[c] = -1 if mover is None else self._index[mover]
