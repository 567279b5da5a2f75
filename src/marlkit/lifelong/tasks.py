"""One task of a sequence as a batched env: a registered env seen through a fixed input/output layout.

``TaskEnv`` (registered as ``task-v0``) wraps any batched env id with the changes a task sequence makes to it,
so every task of a sequence has the *same* groups and spaces and one learner can train on all of them:

* **Padding plus task id.** Observations are zero-padded to ``obs_dim`` and followed by a one-hot task index of
  ``num_tasks`` entries (``num_tasks=0``: no index). The global state is padded to ``state_dim``. Discrete action
  spaces are padded to ``num_actions`` and the extra actions masked out (``info["action_mask"]``), so tasks with
  fewer actions are never given one they lack. What cannot be padded — a different number of learning agents,
  continuous actions of another size — is refused with a ``ConfigError`` naming the difference
  (``marlkit.lifelong.sequences.TaskSequence``).
* **Rule changes.** ``action_perm`` relabels the discrete actions (the learner's action ``a`` is the env's
  ``action_perm[a]``: remapped controls); ``hide`` zeroes observation entries (a channel switched off: the
  teammates' part of the observation); the wrapped env's own options (reward weights, speeds, layouts) are in
  ``base_kwargs``.
* **Partners.** The last ``partners`` agents of the wrapped env's single group are played by a fixed teammate, not
  by the learner: ``"noop"`` (action 0), ``"random"`` (uniform over allowed actions) or a path to a weights-only
  policy file (``torch.save(policy.policy_state(), path)``, loaded with ``weights_only=True``) acting greedily on
  the wrapped env's observations for the whole group. Swapping that policy is a partner change (ad-hoc teamwork).

Every task reports a ``success`` episode metric in [0, 1]: foraging — the fraction of food collected; pursuit —
capture; spread — every landmark covered (within ``OCCUPY_RADIUS``) at the last step. Other envs report none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.core.config import ConfigError
from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs

TASK_ENV_ID = "task-v0"
PARTNER_KINDS = ("noop", "random")


def _success(base: str, metrics: dict[str, np.ndarray], n_landmarks: int) -> np.ndarray | None:
    """Per-step contribution to the episode's ``success`` (its sum over the episode lies in [0, 1])."""
    if "food_collected" in metrics:
        return np.asarray(metrics["food_collected"], dtype=np.float64)
    if "capture" in metrics:
        return np.minimum(np.asarray(metrics["capture"], dtype=np.float64), 1.0)
    if "occupied_landmarks" in metrics:  # non-zero only at the last step of an episode
        return (np.asarray(metrics["occupied_landmarks"]) >= n_landmarks).astype(np.float64)
    return None


class TaskEnv(MultiAgentEnv):
    """``base`` (an env id) with ``base_kwargs``, padded, relabelled and partnered as the module docstring says."""

    def __init__(
        self,
        base: str = "foraging-v0",
        base_kwargs: dict[str, Any] | None = None,
        task_id: int = 0,
        num_tasks: int = 0,
        obs_dim: int | None = None,
        state_dim: int | None = None,
        num_actions: int | None = None,
        action_perm: Sequence[int] | None = None,
        hide: Sequence[int] = (),
        partners: int = 0,
        partner: str = "noop",
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        from marlkit.envs.registry import make

        super().__init__(num_envs, seed)
        if base == TASK_ENV_ID:
            raise ConfigError(f"env.kwargs.base = {base!r} is not allowed: a task wraps another env id")
        self.inner = inner = make(base, num_envs=num_envs, **dict(base_kwargs or {}))
        inner._t = self._t  # the wrapped dynamics read the episode clock (spread: the last step); share it
        self.max_steps = inner.max_steps
        if len(inner.groups) != 1:
            raise ConfigError(f"a task wraps an env with one group of agents; {base} has groups {sorted(inner.groups)}")
        ((self.group, ids),) = inner.groups.items()
        if not 0 <= partners < len(ids):
            raise ConfigError(f"env.kwargs.partners = {partners} is not allowed: 0 to {len(ids) - 1} for {base}")
        self.n_learn = len(ids) - partners
        inner_obs = inner.group_observation_space(self.group)
        inner_act = inner.group_action_space(self.group)
        self.inner_obs_dim = int(np.prod(inner_obs.shape))
        self.obs_pad = self.inner_obs_dim if obs_dim is None else int(obs_dim)
        if self.obs_pad < self.inner_obs_dim:
            raise ConfigError(
                f"env.kwargs.obs_dim = {obs_dim} is smaller than {base}'s observation ({self.inner_obs_dim})"
            )
        self.task_id, self.num_tasks = int(task_id), int(num_tasks)
        if self.num_tasks and not 0 <= self.task_id < self.num_tasks:
            raise ConfigError(f"env.kwargs.task_id = {task_id} is not allowed: 0 to {self.num_tasks - 1}")
        inner_state = int(np.prod(inner.state_space.shape))
        self.state_pad = inner_state if state_dim is None else int(state_dim)
        if self.state_pad < inner_state:
            raise ConfigError(f"env.kwargs.state_dim = {state_dim} is smaller than {base}'s state ({inner_state})")
        self.hide = np.asarray(list(hide), dtype=np.int64)
        if self.hide.size and (self.hide.min() < 0 or self.hide.max() >= self.inner_obs_dim):
            raise ConfigError(
                f"env.kwargs.hide = {list(hide)} must index {base}'s observation (0..{self.inner_obs_dim - 1})"
            )

        self.discrete = isinstance(inner_act, spaces.Discrete)
        if self.discrete:
            assert isinstance(inner_act, spaces.Discrete)
            self.inner_n = int(inner_act.n)
            self.n_actions = self.inner_n if num_actions is None else int(num_actions)
            if self.n_actions < self.inner_n:
                raise ConfigError(f"env.kwargs.num_actions = {num_actions} is fewer than {base}'s {self.inner_n}")
            perm = list(range(self.n_actions)) if action_perm is None else [int(a) for a in action_perm]
            if sorted(perm) != list(range(self.n_actions)):
                raise ConfigError(
                    f"env.kwargs.action_perm = {action_perm} is not allowed: a permutation of 0..{self.n_actions - 1}"
                )
            self.perm = np.asarray(perm, dtype=np.int64)
            act_space: Any = spaces.Discrete(self.n_actions)
        else:
            if action_perm is not None or (
                num_actions is not None and num_actions != int(np.prod(inner_act.shape or ()))
            ):
                raise ConfigError(
                    f"{base} has continuous actions: action_perm and a different num_actions are not supported "
                    f"(only Discrete actions are padded or relabelled)"
                )
            act_space = inner_act
        self.partner_kind = partner
        self.partner_policy: Any = None
        if partners and partner not in PARTNER_KINDS:
            self.partner_policy = load_policy_file(partner)
        self.partners = partners
        self.n_landmarks = len(ids)
        self.base = base

        # Unbounded observation entries (the task id in [0, 1]): the wrapped envs of a sequence differ in their
        # bounds (grid sizes, hidden entries), and every task must present the one space a learner is built for.
        low = np.zeros(self.obs_pad + self.num_tasks, np.float32)
        high = np.ones(self.obs_pad + self.num_tasks, np.float32)
        low[: self.obs_pad], high[: self.obs_pad] = -np.inf, np.inf
        learn_ids = ids[: self.n_learn]
        self._set_spaces(
            {self.group: learn_ids},
            {self.group: spaces.Box(low, high, dtype=np.float32)},
            {self.group: act_space},
            spaces.Box(-np.inf, np.inf, (self.state_pad,), np.float32),
        )
        self._inner_obs: np.ndarray | None = None
        self._masked = self.discrete and (self.n_actions > self.inner_n or inner._action_mask() is not None)

    # ------------------------------------------------------------------------------------------- dynamics
    def _reset_copies(self, mask: np.ndarray) -> None:
        self.inner.np_random = self.np_random
        self.inner._reset_copies(mask)

    def _inner_mask(self) -> np.ndarray | None:
        m = self.inner._action_mask()
        return None if m is None else m[self.group]

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        a = np.asarray(actions[self.group])
        if self.discrete:
            a = self.perm[a.astype(np.int64)]
        if self.partners:
            full = np.zeros((self.num_envs, self.n_learn + self.partners, *a.shape[2:]), dtype=a.dtype)
            full[:, : self.n_learn] = a
            full[:, self.n_learn :] = self._partner_actions()[:, self.n_learn :]
            a = full
        rewards, terminated, metrics = self.inner._step_dynamics({self.group: a})
        success = _success(self.base, metrics, self.n_landmarks)
        if success is not None:
            metrics = {**metrics, "success": success}
        k = self.n_learn
        return {self.group: rewards[self.group][:, :k]}, {self.group: terminated[self.group][:, :k]}, metrics

    def _partner_actions(self) -> np.ndarray:
        obs = self._inner_obs if self._inner_obs is not None else self.inner._observe()[self.group]
        n = obs.shape[1]
        mask = self._inner_mask()
        if self.partner_policy is not None:
            info = {} if mask is None else {"action_mask": {self.group: mask}}
            acts, _ = self.partner_policy.act({self.group: obs}, None, info, explore=False)
            return np.asarray(acts[self.group])
        if not self.discrete:
            shape = self.inner.group_action_space(self.group).shape or ()
            low = self.inner.group_action_space(self.group).low  # type: ignore[union-attr]
            high = self.inner.group_action_space(self.group).high  # type: ignore[union-attr]
            if self.partner_kind == "noop":
                return np.broadcast_to((low + high) / 2, (self.num_envs, n, *shape)).astype(np.float32)
            return self.np_random.uniform(low, high, (self.num_envs, n, *shape)).astype(np.float32)
        if self.partner_kind == "noop":
            return np.zeros((self.num_envs, n), dtype=np.int64)
        allowed = np.ones((self.num_envs, n, self.inner_n), bool) if mask is None else mask
        keys = np.where(allowed, self.np_random.random(allowed.shape), -1.0)
        out: np.ndarray = keys.argmax(-1)
        return out

    def _observe(self) -> Obs:
        inner = self.inner._observe()[self.group]
        self._inner_obs = inner
        x = inner[:, : self.n_learn].reshape(self.num_envs, self.n_learn, -1).astype(np.float32)
        if self.hide.size:
            x = x.copy()
            x[..., self.hide] = 0.0
        out = np.zeros((self.num_envs, self.n_learn, self.obs_pad + self.num_tasks), np.float32)
        out[..., : self.inner_obs_dim] = x
        if self.num_tasks:
            out[..., self.obs_pad + self.task_id] = 1.0
        return {self.group: out}

    def _state(self) -> np.ndarray:
        s = self.inner._state().reshape(self.num_envs, -1)
        out = np.zeros((self.num_envs, self.state_pad), np.float32)
        out[:, : s.shape[1]] = s
        return out

    def _action_mask(self) -> dict[str, np.ndarray] | None:
        if not self._masked:
            return None
        inner = self._inner_mask()
        out = np.zeros((self.num_envs, self.n_learn, self.n_actions), bool)
        inner_ok = (
            np.ones((self.num_envs, self.n_learn, self.inner_n), bool) if inner is None else inner[:, : self.n_learn]
        )
        # The learner's action b is the env's perm[b]: allowed when perm[b] is an allowed action of the env.
        padded = np.zeros((self.num_envs, self.n_learn, self.n_actions), bool)
        padded[..., : self.inner_n] = inner_ok
        out[:] = padded[..., self.perm]
        return {self.group: out}

    def _truncated(self) -> dict[str, np.ndarray] | None:
        t = self.inner._truncated()
        return None if t is None else {self.group: t[self.group][:, : self.n_learn]}

    def _active(self) -> dict[str, np.ndarray] | None:
        act = self.inner._active()
        return None if act is None else {self.group: act[self.group][:, : self.n_learn]}

    @property
    def renders(self) -> bool:
        return bool(self.inner.renders)

    def _render_copy(self, index: int) -> np.ndarray:
        return self.inner._render_copy(index)


def load_policy_file(path: str | Path) -> Any:
    """A weights-only policy saved with ``torch.save(policy.policy_state(), path)`` (nothing in it is executed)."""
    import pickle

    import torch

    from marlkit.core import policy_from_state

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"partner {str(path)!r} is not allowed: one of {PARTNER_KINDS} or the path of a policy file "
            f"(torch.save(policy.policy_state(), path))"
        )
    try:
        state = torch.load(p, weights_only=True, map_location="cpu")
    except (EOFError, OSError, RuntimeError, ValueError, pickle.UnpicklingError) as e:  # not weights only
        raise ConfigError(
            f"partner {str(path)!r} is not a weights-only policy file (torch.save(policy.policy_state(), path)): "
            f"{type(e).__name__}: {e}"
        ) from None
    return policy_from_state(state, seed=0)


def register_task_env() -> None:
    """Register ``task-v0`` with the env registry (once)."""
    from marlkit.envs.registry import list_envs, register

    if TASK_ENV_ID not in list_envs():
        register(
            TASK_ENV_ID,
            "marlkit.lifelong.tasks:TaskEnv",
            description="A task of a lifelong sequence: an env id padded to a fixed layout, with a task id, "
            "relabelled actions and fixed partners (marlkit.lifelong)",
        )
