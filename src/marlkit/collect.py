"""Collection: an actor (a learner or a policy, ``marlkit.core.Actor``) acts in a batched env for T steps and the
steps become a ``Rollout``.

The collector is the only place that talks to both an environment and a policy, so the runner, the evaluator and
(later) the Ray rollout workers all use this one class. It is the local ``marlkit.core.BatchSource``: what the
runner feeds a learner with unless it is given another source.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marlkit.core.contracts import Actor
from marlkit.data.rollout import EpisodeStats, Rollout, RolloutBuffer
from marlkit.envs.base import MultiAgentEnv


class Collector:
    """Steps ``env`` with ``policy`` and fills a preallocated rollout of ``steps`` steps per call to ``collect``.

    As a ``BatchSource``: each batch holds ``steps_per_batch = steps * env.num_envs`` env-steps, and its checkpoint
    state is the env's generator (restoring it resets every copy from that generator: episodes in progress are
    dropped, and everything after is a pure function of the state)."""

    def __init__(
        self, env: MultiAgentEnv, policy: Actor, steps: int, seed: int | None = None, store_state: bool | None = None
    ) -> None:
        self.env, self.policy, self.steps = env, policy, steps
        self.store_state = policy.uses_state if store_state is None else store_state
        self.obs, self.info = env.reset(seed=seed)
        self.env_state = env.state() if self.store_state else None
        self.buffer = RolloutBuffer(env, steps, self.store_state, policy.extras_spec, "action_mask" in self.info)
        self._validated = False

    @property
    def steps_per_batch(self) -> int:
        """Env-steps (summed over copies) in each batch."""
        return self.steps * self.env.num_envs

    def state(self) -> dict[str, Any]:
        """The env's generator state (what a checkpoint needs to continue the stream)."""
        from marlkit.core.checkpoint import generator_state

        return {"env_rng": generator_state(self.env.np_random)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the env's generator and reset every copy from it."""
        from marlkit.core.checkpoint import restore_generator

        self.env.np_random = restore_generator(state["env_rng"])
        self.obs, self.info = self.env.reset(seed=None)
        self.env_state = self.env.state() if self.store_state else None

    def collect(self) -> tuple[Rollout, EpisodeStats]:
        """Run ``steps`` steps of every copy; return the rollout and the episodes that ended meanwhile."""
        env, buf, stats = self.env, self.buffer, EpisodeStats()
        for t in range(self.steps):
            actions, extras = self.policy.act(self.obs, self.env_state, self.info, explore=True)
            for g in env.groups:
                buf.obs[g][t] = self.obs[g]
                buf.actions[g][t] = actions[g]
                for k, v in extras.get(g, {}).items():
                    buf.extras[g][k][t] = v
                if buf.mask:
                    buf.mask[g][t] = self.info["action_mask"][g]
                if "active" in self.info:
                    buf.active[g][t] = self.info["active"][g]
            if buf.state is not None:  # allocated when store_state
                buf.state[t] = self.env_state
            obs, rewards, terminated, truncated, info = env.step(actions)
            if not self._validated:  # the first step went through the env's checks; trust the policy after it
                env.validate_actions, self._validated = False, True
            for g in env.groups:
                buf.rewards[g][t] = rewards[g]
                buf.terminated[g][t] = terminated[g]
                buf.truncated[g][t] = truncated[g]
                buf.next_obs[g][t] = info["final_obs"][g]
                if buf.next_mask:
                    buf.next_mask[g][t] = (
                        info["final_action_mask"] if "final_action_mask" in info else info["action_mask"]
                    )[g]
            if buf.next_state is not None:  # allocated when store_state
                self.env_state = env.state()
                buf.next_state[t] = self.env_state
                if info["episode_done"].any():
                    done = info["episode_done"]
                    buf.next_state[t][done] = info["final_state"][done]
            if info["episode_done"].any():
                stats.add(info)
            self.obs, self.info = obs, info
        return buf.rollout(), stats


def evaluate(
    env: MultiAgentEnv, policy: Actor, episodes: int, seed: int | None = None, explore: bool = False
) -> EpisodeStats:
    """Run ``policy`` (greedy unless ``explore``) for ``episodes`` episodes spread evenly over the copies.

    Each copy contributes at most ``ceil(episodes / num_envs)`` episodes, counted in the order they start, so
    short episodes (an early capture) are not over-represented the way "the first N to finish" would make them.
    """
    stats = EpisodeStats()
    quota = -(-episodes // env.num_envs)
    taken = np.zeros(env.num_envs, dtype=np.int64)
    obs, info = env.reset(seed=seed)
    uses_state = policy.uses_state
    while len(stats) < episodes:
        actions, _ = policy.act(obs, env.state() if uses_state else None, info, explore=explore)
        obs, _, _, _, info = env.step(actions)
        done = info["episode_done"]
        if done.any():
            keep = done & (taken < quota)
            taken += done
            if keep.any():
                stats.add({**info, "episode_done": keep})
    return _first(stats, episodes)


def _first(stats: EpisodeStats, n: int) -> EpisodeStats:
    """Keep the first ``n`` episodes (the last batch of copies to finish may overshoot)."""
    return EpisodeStats(
        {g: r[:n] for g, r in stats.returns.items()}, stats.lengths[:n], {k: v[:n] for k, v in stats.metrics.items()}
    )
