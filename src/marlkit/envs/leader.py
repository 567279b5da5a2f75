"""Leader election (``leader-election-v0``): agents talk for a few rounds, then must all name the same leader, one
that is able to lead.

A small cooperative game for emergent hierarchy: each episode every agent is privately *available* (able to lead)
with probability ``p_available`` (at least one is: when the draw leaves none, one agent drawn uniformly becomes
available; with the default ``p_available=0`` exactly one agent, drawn uniformly, is). Only the agent itself
knows. For ``rounds`` steps every agent broadcasts a message, the name of an
agent (``Discrete(num_agents)``), which every agent hears at the next step; at the step after the last round each
agent names its leader (the same action space) and the episode terminates (``rounds + 1`` steps). Every agent receives 1 when all names
agree and the named agent is available, otherwise 0. Naming a fixed agent without talking succeeds only when that
agent happens to be available, so agreement on a leader who can lead needs the channel: an available agent can
announce itself and the others follow (when several do, a rule such as "the lowest id" settles it).

One group ``"agents"`` (``agent_0`` ...). Observation of agent i, float32, ``1 + (rounds + 1) + n^2``: its own
availability, the step as a one-hot (``rounds`` talking steps, then the vote), every agent's message of the
previous step as a one-hot in agent order (zeros at the first step). State: every agent's availability, the step
one-hot and the messages (``n + rounds + 1 + n^2``).
Metrics (``info["episode_metrics"]``): ``agreement`` (all named the same agent), ``success`` (and it was available).
Sub-tasks (``subtask_counts``): the agent each agent named as leader, at the vote step (what
``marlkit.metrics.roles.leader_agreement`` scores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs


class LeaderElection(MultiAgentEnv):
    """``num_agents`` agents, ``rounds`` rounds of messages, then a vote; see the module docstring."""

    def __init__(
        self,
        num_agents: int = 3,
        rounds: int = 1,
        p_available: float = 0.0,
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        for name, value, low in (("num_agents", num_agents, 2), ("rounds", rounds, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= p_available <= 1.0:
            raise ValueError(f"p_available is a probability in [0, 1], got {p_available!r}")
        self.n, self.rounds, self.p_available = int(num_agents), int(rounds), float(p_available)
        n, e = self.n, self.num_envs
        obs_dim = 1 + self.rounds + 1 + n * n
        self._set_spaces(
            {"agents": tuple(f"agent_{i}" for i in range(n))},
            {"agents": spaces.Box(0.0, 1.0, (obs_dim,), np.float32)},
            {"agents": spaces.Discrete(n)},
            spaces.Box(0.0, 1.0, (n + self.rounds + 1 + n * n,), np.float32),
        )
        self._available = np.zeros((e, n), dtype=bool)
        self._messages = np.zeros((e, n, n), dtype=np.float32)  # one-hot of the last step's messages
        self._votes = np.zeros((e, n), dtype=np.int64)
        self._voted = np.zeros(e, dtype=bool)  # the last step was a vote (its counts are the votes)
        self._eye = np.eye(n, dtype=np.float32)

    def _reset_copies(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        avail = self.np_random.random((k, self.n)) < self.p_available
        none = ~avail.any(axis=1)
        avail[np.flatnonzero(none), self.np_random.integers(0, self.n, int(none.sum()))] = True
        self._available[mask] = avail
        self._messages[mask] = 0.0

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        a = np.asarray(actions["agents"], dtype=np.int64)
        e, n = self.num_envs, self.n
        vote = self._t == self.rounds  # (E,) the step before this one was the last round of talk
        agree = (a == a[:, :1]).all(axis=1) & vote
        success = agree & self._available[np.arange(e), a[:, 0]]
        self._messages = self._eye[a]
        self._votes, self._voted = a, vote
        rewards = np.broadcast_to(success[:, None], (e, n)).astype(np.float32)
        terminated = np.broadcast_to(vote[:, None], (e, n)).copy()
        metrics = {"agreement": agree.astype(np.float64), "success": success.astype(np.float64)}
        return {"agents": rewards}, {"agents": terminated}, metrics

    def _observe(self) -> Obs:
        e, n = self.num_envs, self.n
        step = np.zeros((e, self.rounds + 1), dtype=np.float32)
        step[np.arange(e), np.minimum(self._t, self.rounds)] = 1.0
        shared = np.concatenate([step, self._messages.reshape(e, n * n)], axis=1)
        obs = np.concatenate(
            [self._available[..., None].astype(np.float32), np.broadcast_to(shared[:, None], (e, n, shared.shape[1]))],
            axis=-1,
        )
        return {"agents": obs}

    def _state(self) -> np.ndarray:
        e = self.num_envs
        step = np.zeros((e, self.rounds + 1), dtype=np.float32)
        step[np.arange(e), np.minimum(self._t, self.rounds)] = 1.0
        return np.concatenate(
            [self._available.astype(np.float32), step, self._messages.reshape(e, self.n * self.n)], axis=1
        )

    def subtask_counts(self, info: dict[str, Any]) -> np.ndarray:
        """``(num_envs, n_agents, n_agents)``: one-hot of the agent each agent named, where the last step was the
        vote (zeros elsewhere)."""
        return self._eye[self._votes].astype(np.float64) * self._voted[:, None, None]
