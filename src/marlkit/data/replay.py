"""Replay memory for off-policy learners: single transitions (feed-forward Q-networks) or whole episodes (recurrent).

Papers: Mnih et al. 2015, "Human-level control through deep reinforcement learning" (experience replay, Nature
518); Sutton 1988 / Hessel et al. 2018, "Rainbow" (n-step returns, https://arxiv.org/abs/1710.02298); Hausknecht &
Stone 2015, "Deep Recurrent Q-Learning for Partially Observable MDPs" (episode replay for a recurrent Q-network,
https://arxiv.org/abs/1507.06527); Pardo et al. 2018, "Time Limits in Reinforcement Learning" (bootstrap on
truncation, https://arxiv.org/abs/1712.00378).

Both buffers take whole ``Rollout``s (``(T, num_envs, n_agents, ...)`` per group) and store them in preallocated
NumPy arrays; everything they hand out is torch tensors, per group, plus the global ``state`` when stored.

* ``TransitionReplay`` keeps the rollout's layout: a ring of time rows, one column per copy, so the steps that
  follow a transition in its episode are the rows below it. A sample is ``batch`` uniformly drawn (row, copy)
  pairs, with the n-step return read from the next rows.
* ``EpisodeReplay`` assembles each copy's steps into its current episode and, when the episode ends, stores it
  in a slot of ``max_len`` steps (the rest padded and marked invalid); a sample is ``batch`` whole episodes.

n-step targets (``n_step_returns``): for the step at ``t`` the window runs to ``u = t + m - 1`` with
``m = min(n, steps until the episode ends)``; ``returns = sum_k gamma^k r_{t+k}`` and
``discount = gamma^m * (1 - terminated_u)``, and the learner bootstraps ``returns + discount * Q(next_obs_u)``.
An episode cut by a time limit is *truncated*, not terminated, so its last state is bootstrapped. The episode end
is the copy's (every agent terminated or truncated); an agent that died earlier stays terminated with zero reward,
so its own target stops bootstrapping without cutting its teammates' windows.

Action masks: the mask of ``next_obs_u`` is the rollout's ``next_action_mask`` (the collector stores the env's
``final_action_mask`` at an episode's end, the mask of the final observation), so a truncated episode's bootstrapped
max ranges over the actions allowed there. Invalid actions are never taken, so their Q-values are never trained:
a max over them would inject arbitrary values into the target at every truncation. A rollout without
``next_action_mask`` (built by hand) falls back to the next row's mask, all true at an episode's end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from marlkit.data.rollout import Rollout


def n_step_returns(rewards: np.ndarray, terminated: np.ndarray, ends: np.ndarray, gamma: float,
                   n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns along axis 1 of ``(B, L, ...)`` arrays; ``ends (B, L)`` marks the last step of an episode.

    Returns ``(returns, discount, last)``: ``returns`` and ``discount`` shaped like ``rewards``, and ``last (B, L)``
    the index ``u`` of the step whose ``next_obs`` is bootstrapped from. A window that reaches the end of the
    ``L`` steps stops there (the caller gives enough steps, or marks ``ends`` at its last one).
    """
    B, L = ends.shape
    extra = (1,) * (rewards.ndim - 2)
    t = np.arange(L)
    returns = np.zeros(rewards.shape, np.float32)
    last = np.broadcast_to(t, (B, L)).copy()
    open_ = np.ones((B, L), bool)
    for k in range(n):  # a loop over the window's offsets, never over data
        idx = t + k
        inside = idx < L
        idx = np.minimum(idx, L - 1)
        open_ &= inside
        returns += (gamma ** k) * open_.reshape(B, L, *extra) * rewards[:, idx]
        last = np.where(open_, idx, last)
        open_ = open_ & ~ends[:, idx]
    m = (last - t + 1).reshape(B, L, *extra)
    term = np.take_along_axis(terminated, last.reshape(B, L, *extra), axis=1)
    discount = (gamma ** m * ~term).astype(np.float32)
    return returns, discount, last


def _group_arrays(rollout: Rollout) -> dict[str, dict[str, torch.Tensor]]:
    """What a buffer stores of each group, as ``name -> (T, E, n, ...)``."""
    out = {}
    for g in rollout.obs:
        d = {"obs": rollout.obs[g], "next_obs": rollout.next_obs[g], "actions": rollout.actions[g],
             "rewards": rollout.rewards[g], "terminated": rollout.terminated[g], "active": rollout.active[g]}
        if rollout.action_mask is not None and g in rollout.action_mask:
            d["mask"] = rollout.action_mask[g]
            if rollout.next_action_mask is not None and g in rollout.next_action_mask:
                d["next_mask"] = rollout.next_action_mask[g]
        out[g] = d
    return out


def _episode_ends(rollout: Rollout) -> np.ndarray:
    """``(T, E)``: the copy's episode ended at this step (every agent of every group terminated or truncated)."""
    ends: np.ndarray | None = None
    for g in rollout.obs:
        done = (rollout.terminated[g] | rollout.truncated[g]).all(-1).numpy()
        ends = done if ends is None else ends & done
    if ends is None:
        raise ValueError("a rollout must hold at least one group")
    return ends


class _Storage:
    """Named preallocated arrays ``(*lead, ...)``: per group (``groups[g][name]``) and the global ``state``."""

    def __init__(self, lead: tuple[int, ...], shapes: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """``shapes``: ``"group/name"`` or ``"state"``/``"next_state"`` -> (per-item shape, dtype)."""
        self.groups: dict[str, dict[str, np.ndarray]] = {}
        self.state: dict[str, np.ndarray] | None = None
        for key, (shape, dtype) in shapes.items():
            a = np.zeros((*lead, *shape), dtype)
            if "/" in key:
                g, name = key.split("/")
                self.groups.setdefault(g, {})[name] = a
            else:
                self.state = self.state or {}
                self.state[key] = a

    @staticmethod
    def shapes_of(rollout: Rollout) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The per-item shapes of a rollout's ``(T, E, ...)`` arrays."""
        out = {f"{g}/{k}": (tuple(v.shape[2:]), v.numpy().dtype)
               for g, d in _group_arrays(rollout).items() for k, v in d.items()}
        if rollout.state is not None:
            out["state"] = out["next_state"] = (tuple(rollout.state.shape[2:]), np.dtype(np.float32))
        return out

    @staticmethod
    def shapes_saved(data: dict[str, torch.Tensor], skip: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """The per-item shapes of saved ``(rows, ...)`` tensors (all but ``skip``)."""
        return {k: (tuple(t.shape[1:]), t.numpy().dtype) for k, t in data.items() if k != skip}

    def write_state(self, index: Any, rollout_state: torch.Tensor | None, next_state: torch.Tensor | None) -> None:
        """Write a rollout's ``state``/``next_state`` (or a step of them) at ``index``, when states are stored."""
        if self.state is None:
            return
        if rollout_state is None or next_state is None:
            raise ValueError("this replay stores the global state, but the rollout has none")
        self.state["state"][index] = rollout_state.numpy()
        self.state["next_state"][index] = next_state.numpy()

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"{g}/{k}": a for g, d in self.groups.items() for k, a in d.items()}
        out.update(self.state or {})
        return out


class TransitionReplay:
    """A ring of ``capacity`` time rows of ``num_envs`` copies each (``capacity * num_envs`` transitions)."""

    def __init__(self, capacity: int, n_step: int = 1, gamma: float = 0.99) -> None:
        self.capacity, self.n_step, self.gamma = capacity, n_step, gamma
        self.storage: _Storage | None = None  # built on the first insert, when the shapes are known
        self.ends: np.ndarray | None = None
        self.pos = 0  # next row to write
        self.size = 0  # rows held

    def __len__(self) -> int:
        """Transitions that can be sampled (those whose n-step window and next row are already stored)."""
        if self.ends is None:
            return 0
        return max(self.size - self.n_step, 0) * self.ends.shape[1]

    def insert(self, rollout: Rollout) -> None:
        """Append all ``T`` rows of ``rollout`` (one vectorised write per array, wrapping around)."""
        T, E = next(iter(rollout.obs.values())).shape[:2]
        if T > self.capacity:
            raise ValueError(f"a rollout of {T} steps does not fit a replay of {self.capacity} rows")
        if self.storage is None or self.ends is None:
            self.storage = _Storage((self.capacity, E), _Storage.shapes_of(rollout))
            self.ends = np.zeros((self.capacity, E), bool)
        rows = (self.pos + np.arange(T)) % self.capacity
        for g, d in _group_arrays(rollout).items():
            for k, v in d.items():
                self.storage.groups[g][k][rows] = v.numpy()
        self.storage.write_state(rows, rollout.state, rollout.next_state)
        self.ends[rows] = _episode_ends(rollout)
        self.pos = (self.pos + T) % self.capacity
        self.size = min(self.size + T, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, Any]:
        """``batch`` transitions drawn uniformly; per group ``obs, actions, active, returns, discount, next_obs,
        next_mask`` (and ``mask``) shaped ``(batch, n_agents, ...)``; ``state``/``next_state`` ``(batch, ...)``."""
        if len(self) == 0 or self.storage is None or self.ends is None:
            raise ValueError("the replay holds no complete n-step transition yet")
        n, E = self.n_step, self.ends.shape[1]
        i = rng.integers(0, self.size - n, size=batch)  # age order: 0 is the oldest row
        e = rng.integers(0, E, size=batch)
        window = (self.pos - self.size + i[:, None] + np.arange(n + 1)) % self.capacity  # (B, n + 1) rows
        ends = self.ends[window[:, :n], e[:, None]]
        out: dict[str, Any] = {}
        for g, s in self.storage.groups.items():
            ee = e[:, None]
            ret, disc, last = n_step_returns(s["rewards"][window[:, :n], ee], s["terminated"][window[:, :n], ee],
                                             ends, self.gamma, n)
            u = window[np.arange(batch), last[:, 0]]  # row whose next_obs is bootstrapped from
            row0 = window[:, 0]
            d = {"obs": s["obs"][row0, e], "actions": s["actions"][row0, e], "active": s["active"][row0, e],
                 "returns": ret[:, 0], "discount": disc[:, 0], "next_obs": s["next_obs"][u, e]}
            if "next_mask" in s:
                d["mask"], d["next_mask"] = s["mask"][row0, e], s["next_mask"][u, e]
            elif "mask" in s:
                d["mask"] = s["mask"][row0, e]
                after = window[np.arange(batch), last[:, 0] + 1]
                d["next_mask"] = s["mask"][after, e] | self.ends[u, e][:, None, None]
            out[g] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()}
        if self.storage.state is not None:
            u = window[np.arange(batch), last[:, 0]]  # the windows' ends do not depend on the group
            out["state"] = torch.from_numpy(self.storage.state["state"][window[:, 0], e])
            out["next_state"] = torch.from_numpy(self.storage.state["next_state"][u, e])
        return out

    def cut(self) -> None:
        """Mark the newest row as an episode end (not a termination): the next insert does not continue it."""
        if self.size and self.ends is not None:
            self.ends[(self.pos - 1) % self.capacity] = True

    def state_dict(self) -> dict[str, Any]:
        if self.storage is None or self.ends is None:
            return {"size": 0}
        # Rotate so the oldest row comes first: only the rows held are saved.
        order = (self.pos - self.size + np.arange(self.size)) % self.capacity
        data = {k: torch.from_numpy(a[order]) for k, a in {**self.storage.arrays(), "ends": self.ends}.items()}
        return {"size": self.size, "data": data}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore ``state_dict()``, oldest row first."""
        self.size, self.pos = int(saved["size"]), int(saved["size"]) % self.capacity
        if self.size == 0:
            return
        data = saved["data"]
        if self.storage is None or self.ends is None:
            self.storage = _Storage((self.capacity,), _Storage.shapes_saved(data, skip="ends"))
            self.ends = np.zeros((self.capacity, *data["ends"].shape[1:]), bool)
        for k, a in {**self.storage.arrays(), "ends": self.ends}.items():
            a[:] = 0
            a[:self.size] = data[k].numpy()


class EpisodeReplay:
    """``capacity`` slots of whole episodes, each ``max_len`` steps with a ``filled`` mask; a ring over slots."""

    def __init__(self, capacity: int, max_len: int, n_step: int = 1, gamma: float = 0.99) -> None:
        self.capacity, self.max_len, self.n_step, self.gamma = capacity, max_len, n_step, gamma
        self.slots: _Storage | None = None
        self.filled: np.ndarray | None = None  # (capacity, max_len) steps that hold data
        self.current: _Storage | None = None  # each copy's episode in progress
        self.cursor: np.ndarray | None = None  # (num_envs,) steps in it so far
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        """Complete episodes stored."""
        return self.size

    def insert(self, rollout: Rollout) -> None:
        """Add every copy's ``T`` steps to its episode in progress; store the episodes that end. An episode longer
        than ``max_len`` is stored in pieces, each piece ending as if truncated (bootstrapped)."""
        T, E = next(iter(rollout.obs.values())).shape[:2]
        if self.slots is None or self.current is None or self.filled is None or self.cursor is None:
            shapes = _Storage.shapes_of(rollout)
            self.slots = _Storage((self.capacity, self.max_len), shapes)
            self.current = _Storage((E, self.max_len), shapes)
            self.filled = np.zeros((self.capacity, self.max_len), bool)
            self.cursor = np.zeros(E, np.int64)
        copies = np.arange(E)
        arrays = _group_arrays(rollout)
        ends = _episode_ends(rollout)
        state, next_state = rollout.state, rollout.next_state
        for t in range(T):  # one vectorised write of every copy per step
            for g, d in arrays.items():
                for k, v in d.items():
                    self.current.groups[g][k][copies, self.cursor] = v[t].numpy()
            self.current.write_state((copies, self.cursor), None if state is None else state[t],
                                     None if next_state is None else next_state[t])
            self.cursor += 1
            self._store(ends[t] | (self.cursor == self.max_len), self.slots, self.current, self.filled, self.cursor)

    def _store(self, done: np.ndarray, slot_data: _Storage, current: _Storage, filled: np.ndarray,
               cursor: np.ndarray) -> None:
        """Move the episodes of the ``done`` copies into the next slots and start them afresh."""
        k = int(done.sum())
        if k == 0:
            return
        slots = (self.pos + np.arange(k)) % self.capacity
        lengths = cursor[done]
        dst = slot_data.arrays()
        for name, a in current.arrays().items():
            dst[name][slots] = a[done]
            a[done] = 0
        filled[slots] = np.arange(self.max_len) < lengths[:, None]
        cursor[done] = 0
        self.pos = (self.pos + k) % self.capacity
        self.size = min(self.size + k, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, Any]:
        """``batch`` episodes drawn uniformly: per group ``obs, next_obs, actions, active, (mask, next_mask),
        returns, discount`` shaped ``(batch, max_len, n_agents, ...)`` and ``last (batch, max_len)`` (the step
        whose ``next_obs`` each target bootstraps from); ``filled (batch, max_len)``; ``state``, ``next_state``."""
        if self.size == 0 or self.slots is None or self.filled is None:
            raise ValueError("the replay holds no complete episode yet")
        idx = rng.integers(0, self.size, size=batch)
        filled = self.filled[idx]
        ends = ~np.concatenate([filled[:, 1:], np.zeros((batch, 1), bool)], axis=1)  # last filled step, and padding
        out: dict[str, Any] = {"filled": torch.from_numpy(filled)}
        for g, s in self.slots.groups.items():
            d = {k: a[idx] for k, a in s.items()}
            d["returns"], d["discount"], last = n_step_returns(d.pop("rewards"), d.pop("terminated"), ends,
                                                               self.gamma, self.n_step)
            if "mask" in d and "next_mask" not in d:  # no stored next mask: mask[t + 1], all true at the end
                d["next_mask"] = np.concatenate([d["mask"][:, 1:], np.ones_like(d["mask"][:, :1])], axis=1)
                d["next_mask"] |= ends[:, :, None, None]
            out[g] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()}
        out["last"] = torch.from_numpy(last)
        if self.slots.state is not None:
            out["state"] = torch.from_numpy(self.slots.state["state"][idx])
            out["next_state"] = torch.from_numpy(self.slots.state["next_state"][idx])
        return out

    def cut(self) -> None:
        """Drop the episodes in progress (a resumed run resets every copy, so they will not continue)."""
        if self.current is not None and self.cursor is not None:
            for a in self.current.arrays().values():
                a[:] = 0
            self.cursor[:] = 0

    def state_dict(self) -> dict[str, Any]:
        if self.slots is None or self.filled is None or self.cursor is None:
            return {"size": 0}
        order = (self.pos - self.size + np.arange(self.size)) % self.capacity
        data = {k: torch.from_numpy(a[order]) for k, a in {**self.slots.arrays(), "filled": self.filled}.items()}
        return {"size": self.size, "data": data, "num_envs": len(self.cursor)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore ``state_dict()`` (episodes in progress are not saved: see ``cut``)."""
        self.size, self.pos = int(saved["size"]), int(saved["size"]) % self.capacity
        if self.size == 0:
            return
        data = saved["data"]
        if self.slots is None or self.filled is None:
            shapes = {k: (shape[1:], dtype) for k, (shape, dtype) in _Storage.shapes_saved(data, "filled").items()}
            self.slots = _Storage((self.capacity, self.max_len), shapes)
            self.current = _Storage((int(saved["num_envs"]), self.max_len), shapes)
            self.filled = np.zeros((self.capacity, self.max_len), bool)
            self.cursor = np.zeros(int(saved["num_envs"]), np.int64)
        for k, a in {**self.slots.arrays(), "filled": self.filled}.items():
            a[:] = 0
            a[:self.size] = data[k].numpy()
        self.cut()  # episodes in progress are not saved
