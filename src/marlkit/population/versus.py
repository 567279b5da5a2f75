"""Matches between fixed policies, one per seat: how a learned policy fares against another (a uniformly random
one, an earlier self) in each seat of a game.

``play`` gives every agent of an env its own actor and returns each agent's episode returns; ``against`` plays a
policy in each seat in turn against an opponent in every other seat. ``UniformRandom`` is the usual opponent: a
uniformly random allowed action for every agent (in a turn-based game, a random legal move).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marlkit.core.contracts import Actor
from marlkit.envs.base import MultiAgentEnv
from marlkit.envs.spaces import sample_actions


class UniformRandom:
    """An actor that picks a uniformly random allowed action for every agent (its own generator, seeded)."""

    uses_state = False

    def __init__(self, env: MultiAgentEnv, seed: int | None = None) -> None:
        self.env = env
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in env.groups}
        self.rng = np.random.default_rng(seed)

    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        return sample_actions(self.env, info.get("action_mask"), self.rng), {}


def play(
    env: MultiAgentEnv, players: Sequence[Actor], episodes: int, seed: int | None = None, explore: bool = False
) -> np.ndarray:
    """Agent ``k`` of ``env.agents`` played by ``players[k]`` (greedy unless ``explore``) for ``episodes`` episodes
    spread evenly over the copies; returns ``(episodes, num_agents)``: each agent's return in each episode.

    An actor that plays several seats acts once per step for all of them."""
    if len(players) != env.num_agents:
        raise ValueError(f"play needs one actor per agent of {env.agents}, got {len(players)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    slots = [(g, i) for g, ids in env.groups.items() for i in range(len(ids))]
    distinct = list({id(p): p for p in players}.values())
    quota = -(-episodes // env.num_envs)
    taken = np.zeros(env.num_envs, dtype=np.int64)
    rows: list[np.ndarray] = []
    obs, info = env.reset(seed=seed)
    while len(rows) < episodes:
        state = env.state() if any(p.uses_state for p in distinct) else None
        chosen = {id(p): p.act(obs, state if p.uses_state else None, info, explore=explore)[0] for p in distinct}
        actions = {g: np.array(chosen[id(players[0])][g], copy=True) for g in env.groups}
        for k, (g, i) in enumerate(slots):
            actions[g][:, i] = chosen[id(players[k])][g][:, i]
        obs, _, _, _, info = env.step(actions)
        done = info["episode_done"]
        for c in np.flatnonzero(done & (taken < quota)).tolist():
            rows.append(np.array([info["episode_return"][g][c, i] for g, i in slots]))
        taken += done
    return np.stack(rows[:episodes])


@dataclass(frozen=True)
class SeatResult:
    """A policy's returns in one seat against the opponent in every other."""

    seat: int
    agent: str
    returns: np.ndarray
    """``(episodes,)``: the policy's return in each episode."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def win_rate(self) -> float:
        """Share of episodes with a positive return (a win in a game scored +1 / 0 / -1)."""
        return float((self.returns > 0).mean())

    @property
    def loss_rate(self) -> float:
        return float((self.returns < 0).mean())


def against(
    env: MultiAgentEnv,
    policy: Actor,
    opponent: Actor,
    episodes: int,
    seed: int | None = None,
    explore: bool = False,
    opponent_explore: bool | None = None,
) -> list[SeatResult]:
    """``policy`` in each seat in turn, ``opponent`` in all the others, ``episodes`` episodes per seat; one result
    per seat, in ``env.agents`` order. ``opponent_explore`` (default: ``explore``) is how the opponent acts."""
    opp = opponent if opponent_explore is None or opponent_explore == explore else _Explore(opponent, opponent_explore)
    results = []
    for k, agent in enumerate(env.agents):
        players = [policy if j == k else opp for j in range(env.num_agents)]
        returns = play(env, players, episodes, None if seed is None else seed + k, explore)
        results.append(SeatResult(k, agent, returns[:, k]))
    return results


class _Explore:
    """An actor that always acts with its own ``explore`` setting, whatever the caller asks."""

    def __init__(self, actor: Actor, explore: bool) -> None:
        self.actor, self.explore = actor, explore
        self.extras_spec = actor.extras_spec
        self.uses_state = actor.uses_state

    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        return self.actor.act(obs, state, info, explore=self.explore)
