"""Replay memory for off-policy learners: single transitions (feed-forward Q-networks) or whole episodes (recurrent).

Papers: Mnih et al. 2015, "Human-level control through deep reinforcement learning" (experience replay, Nature
518); Sutton 1988 / Hessel et al. 2018, "Rainbow" (n-step returns, https://arxiv.org/abs/1710.02298); Hausknecht &
Stone 2015, "Deep Recurrent Q-Learning for Partially Observable MDPs" (episode replay for a recurrent Q-network,
https://arxiv.org/abs/1507.06527); Pardo et al. 2018, "Time Limits in Reinforcement Learning" (bootstrap on
truncation, https://arxiv.org/abs/1712.00378).

A replay is a plain service — ``insert(rollout)``, ``sample(batch, rng)``, ``len``, ``cut()``,
``state_dict()``/``load_state_dict()`` — that knows nothing of who acted or how. Both buffers take whole
``Rollout``s (``(T, num_envs, n_agents, ...)`` per group) from one or more *sources* (``Rollout.source``: a
collector, a remote worker, a file of demonstrations), each with its own copy count, and store them in
preallocated NumPy arrays. A source's first rollout registers it; its next rollouts continue its copies' episodes,
so n-step windows and episodes run across a source's rollout boundaries but never from one source into another.
A sample is typed: a ``TransitionBatch`` or an ``EpisodeBatch`` of ``GroupTransitions``, torch tensors per group,
plus the global ``state`` when stored.

* ``TransitionReplay`` keeps each source's layout: a ring of time rows, one column per copy, so the steps that
  follow a transition in its episode are the rows below it. The capacity, in transitions, is shared by the
  sources in proportion to their copies: every source keeps the same number of newest rows (what one FIFO of
  transitions would keep of sources stepping at the same pace), and at least one rollout and its n-step window.
  A sample is ``batch`` transitions drawn uniformly from all sources' complete ones, with the n-step return read
  from the next rows of the same copy.
* ``EpisodeReplay`` assembles each copy's steps into its current episode and, when the episode ends, stores it
  in a slot of ``max_len`` steps (the rest padded and marked invalid), slots shared by all sources; a sample is
  ``batch`` whole episodes.

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

from typing import Any, NamedTuple

import numpy as np
import torch

from marlkit.data.rollout import LOCAL_SOURCE, Rollout

Shapes = dict[str, tuple[tuple[int, ...], np.dtype]]
"""``"group/name"`` or ``"state"``/``"next_state"`` -> (per-item shape, dtype) of what a buffer stores."""


class GroupTransitions(NamedTuple):
    """One group's part of a sample: ``B`` samples of its ``n`` agents.

    In a ``TransitionBatch`` every field is ``(B, n, ...)``. In an ``EpisodeBatch`` a time axis follows the batch
    axis, ``(B, L, n, ...)``: every step of an episode is a sample of its own.
    """

    obs: torch.Tensor
    """``(B, n, *obs_shape)`` float32: what each agent observed when it acted."""
    actions: torch.Tensor
    """``(B, n)`` int64 for ``Discrete`` actions, ``(B, n, *action_shape)`` float32 for ``Box`` ones."""
    returns: torch.Tensor
    """``(B, n)`` float32: each agent's n-step return ``sum_k gamma^k r_{t+k}``."""
    discount: torch.Tensor
    """``(B, n)`` float32: the weight of the bootstrapped value, ``gamma^m``; 0 where the window ends in the
    agent's termination."""
    next_obs: torch.Tensor
    """``(B, n, *obs_shape)`` float32. Transitions: the observation the target bootstraps from (the ``next_obs`` of
    the window's last step). Episodes: each step's own ``next_obs`` (``EpisodeBatch.last`` says which one a
    target bootstraps from)."""
    active: torch.Tensor
    """``(B, n)`` bool: the agent was alive when it acted (the entries to train on)."""
    mask: torch.Tensor | None
    """``(B, n, n_actions)`` bool: the actions allowed when the agent acted; None for envs without masks."""
    next_mask: torch.Tensor | None
    """``(B, n, n_actions)`` bool: the actions allowed in ``next_obs``, what a bootstrapped max ranges over; None
    for envs without masks."""


class TransitionBatch(NamedTuple):
    """``B`` transitions drawn uniformly from a ``TransitionReplay`` (from every source's complete ones)."""

    groups: dict[str, GroupTransitions]
    """Per group: its ``(B, n, ...)`` fields."""
    state: torch.Tensor | None
    """``(B, *state_shape)`` float32: the global state when the action was taken; None when not stored."""
    next_state: torch.Tensor | None
    """``(B, *state_shape)`` float32: the global state the target bootstraps from (after the window's last step);
    None when not stored."""


class EpisodeBatch(NamedTuple):
    """``B`` whole episodes drawn uniformly from an ``EpisodeReplay``, each padded to ``L = max_len`` steps."""

    groups: dict[str, GroupTransitions]
    """Per group: its ``(B, L, n, ...)`` fields (zeros in the padding)."""
    filled: torch.Tensor
    """``(B, L)`` bool: the steps that hold data."""
    last: torch.Tensor
    """``(B, L)`` int64: for step ``t``, the step ``u >= t`` whose ``next_obs`` its n-step target bootstraps from."""
    state: torch.Tensor | None
    """``(B, L, *state_shape)`` float32: the global state at each step; None when not stored."""
    next_state: torch.Tensor | None
    """``(B, L, *state_shape)`` float32: the global state after each step; None when not stored."""


def n_step_returns(
    rewards: np.ndarray, terminated: np.ndarray, ends: np.ndarray, gamma: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        returns += (gamma**k) * open_.reshape(B, L, *extra) * rewards[:, idx]
        last = np.where(open_, idx, last)
        open_ = open_ & ~ends[:, idx]
    m = (last - t + 1).reshape(B, L, *extra)
    term = np.take_along_axis(terminated, last.reshape(B, L, *extra), axis=1)
    discount = (gamma**m * ~term).astype(np.float32)
    return returns, discount, last


def first_step_returns(
    rewards: np.ndarray, terminated: np.ndarray, ends: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_step_returns`` of the first step of each window only: ``(B, n, ...)`` arrays of ``n`` steps from a
    sampled transition on give its return and discount ``(B, ...)`` and ``last (B,)`` (the window's bootstrap
    step). One pass over the ``n`` offsets on ``B`` rows, where ``n_step_returns`` fills all ``n`` columns."""
    B, n = ends.shape
    extra = (1,) * (rewards.ndim - 2)
    returns = np.zeros((B, *rewards.shape[2:]), np.float32)
    last = np.zeros(B, np.int64)
    open_ = np.ones(B, bool)
    for k in range(n):
        returns += (gamma**k) * open_.reshape(B, *extra) * rewards[:, k]
        last[open_] = k
        open_ &= ~ends[:, k]
    term = terminated[np.arange(B), last]
    discount = (gamma ** (last + 1).reshape(B, *extra) * ~term).astype(np.float32)
    return returns, discount, last


def _group_arrays(rollout: Rollout) -> dict[str, dict[str, torch.Tensor]]:
    """What a buffer stores of each group, as ``name -> (T, E, n, ...)``."""
    out = {}
    for g in rollout.obs:
        d = {
            "obs": rollout.obs[g],
            "next_obs": rollout.next_obs[g],
            "actions": rollout.actions[g],
            "rewards": rollout.rewards[g],
            "terminated": rollout.terminated[g],
            "active": rollout.active[g],
        }
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


def _lead(rollout: Rollout) -> tuple[int, int]:
    """``(T, num_envs)`` of a rollout."""
    T, E = next(iter(rollout.obs.values())).shape[:2]
    return int(T), int(E)


def _describe(item: tuple[tuple[int, ...], np.dtype] | None) -> str:
    return "nothing" if item is None else f"{item[1]} items of shape {item[0]}"


def _check_same(source: str, shapes: Shapes, stored: Shapes) -> None:
    """A new source must hold what the replay already stores, shaped alike (the same env, any copy count)."""
    for key in sorted(set(shapes) | set(stored)):
        if shapes.get(key) != stored.get(key):
            raise ValueError(
                f"source {source!r} does not fit this replay: its rollouts hold "
                f"{_describe(shapes.get(key))} for {key!r}, the replay stores {_describe(stored.get(key))} "
                f"(every source must be the same env; only the copy count may differ)"
            )


def _group_sample(d: dict[str, np.ndarray], g: str) -> GroupTransitions:
    """Group ``g``'s fields of ``d`` (keyed ``"g/name"``) as tensors."""

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(d[f"{g}/{name}"]))

    def maybe(name: str) -> torch.Tensor | None:
        return t(name) if f"{g}/{name}" in d else None

    return GroupTransitions(
        t("obs"),
        t("actions"),
        t("returns"),
        t("discount"),
        t("next_obs"),
        t("active"),
        maybe("mask"),
        maybe("next_mask"),
    )


class _Storage:
    """Named preallocated arrays ``(*lead, ...)``: per group (``groups[g][name]``) and the global ``state``."""

    def __init__(self, lead: tuple[int, ...], shapes: Shapes) -> None:
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
    def shapes_of(rollout: Rollout) -> Shapes:
        """The per-item shapes of a rollout's ``(T, E, ...)`` arrays."""
        out = {
            f"{g}/{k}": (tuple(v.shape[2:]), v.numpy().dtype)
            for g, d in _group_arrays(rollout).items()
            for k, v in d.items()
        }
        if rollout.state is not None:
            out["state"] = out["next_state"] = (tuple(rollout.state.shape[2:]), np.dtype(np.float32))
        return out

    @staticmethod
    def shapes_saved(data: dict[str, torch.Tensor], skip: str, lead: int) -> Shapes:
        """The per-item shapes of saved tensors whose first ``lead`` dims index items (all but ``skip``)."""
        return {k: (tuple(t.shape[lead:]), t.numpy().dtype) for k, t in data.items() if k != skip}

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


class _Stream:
    """One source's transitions: a ring of ``rows`` time rows with one column per copy of the source, so the steps
    that follow a transition in its episode are the rows below it."""

    def __init__(self, rows: int, copies: int, shapes: Shapes) -> None:
        self.rows, self.copies, self.shapes = rows, copies, shapes
        self.storage = _Storage((rows, copies), shapes)
        self.ends = np.zeros((rows, copies), bool)  # the copy's episode ended at this step
        self.pos = 0  # next row to write
        self.size = 0  # rows held
        self.min_rows = 0  # the longest rollout inserted and its n-step window: the ring never holds fewer rows

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.storage.arrays(), "ends": self.ends}

    def complete(self, n_step: int) -> int:
        """Transitions whose n-step window and next row are stored."""
        return max(self.size - n_step, 0) * self.copies

    def oldest_first(self) -> np.ndarray:
        """The rows held, oldest first."""
        return (self.pos - self.size + np.arange(self.size)) % self.rows

    def resize(self, rows: int) -> None:
        """Make the ring ``rows`` rows long, keeping the newest ``min(size, rows)`` rows (oldest first)."""
        if rows == self.rows:
            return
        keep = self.oldest_first()[max(self.size - rows, 0) :]
        old = self.arrays()
        self.storage = _Storage((rows, self.copies), self.shapes)
        self.ends = np.zeros((rows, self.copies), bool)
        for k, a in self.arrays().items():
            a[: len(keep)] = old[k][keep]
        self.rows, self.size, self.pos = rows, len(keep), len(keep) % rows

    def write(self, rollout: Rollout) -> None:
        """Append all ``T`` rows of ``rollout`` (one vectorised write per array, wrapping around)."""
        T = _lead(rollout)[0]
        rows = (self.pos + np.arange(T)) % self.rows
        for g, d in _group_arrays(rollout).items():
            for k, v in d.items():
                self.storage.groups[g][k][rows] = v.numpy()
        self.storage.write_state(rows, rollout.state, rollout.next_state)
        self.ends[rows] = _episode_ends(rollout)
        self.pos = (self.pos + T) % self.rows
        self.size = min(self.size + T, self.rows)

    def gather(self, i: np.ndarray, e: np.ndarray, n: int, gamma: float) -> dict[str, np.ndarray]:
        """The transitions at age-ordered rows ``i`` (0: the oldest held) and copies ``e``, each with its n-step
        return, discount and bootstrap observation; keyed as the storage (``"g/name"``, ``"state"``)."""
        B = len(i)
        window = (self.pos - self.size + i[:, None] + np.arange(n + 1)) % self.rows  # (B, n + 1) rows
        ends = self.ends[window[:, :n], e[:, None]]
        row0, ee = window[:, 0], e[:, None]
        out: dict[str, np.ndarray] = {}
        for g, s in self.storage.groups.items():
            ret, disc, last = first_step_returns(
                s["rewards"][window[:, :n], ee], s["terminated"][window[:, :n], ee], ends, gamma
            )
            u = window[np.arange(B), last]  # row whose next_obs is bootstrapped from
            out.update(
                {
                    f"{g}/obs": s["obs"][row0, e],
                    f"{g}/actions": s["actions"][row0, e],
                    f"{g}/active": s["active"][row0, e],
                    f"{g}/returns": ret,
                    f"{g}/discount": disc,
                    f"{g}/next_obs": s["next_obs"][u, e],
                }
            )
            if "next_mask" in s:
                out[f"{g}/mask"], out[f"{g}/next_mask"] = s["mask"][row0, e], s["next_mask"][u, e]
            elif "mask" in s:
                out[f"{g}/mask"] = s["mask"][row0, e]
                after = window[np.arange(B), last + 1]
                out[f"{g}/next_mask"] = s["mask"][after, e] | self.ends[u, e][:, None, None]
        if self.storage.state is not None:
            u = window[np.arange(B), last]  # the windows' ends do not depend on the group
            out["state"] = self.storage.state["state"][row0, e]
            out["next_state"] = self.storage.state["next_state"][u, e]
        return out

    def cut(self) -> None:
        """Mark the newest row as an episode end (not a termination)."""
        if self.size:
            self.ends[(self.pos - 1) % self.rows] = True

    def state_dict(self) -> dict[str, Any]:
        """Only the rows held, oldest first."""
        order = self.oldest_first()
        return {
            "rows": self.rows,
            "min_rows": self.min_rows,
            "size": self.size,
            "data": {k: torch.from_numpy(a[order]) for k, a in self.arrays().items()},
        }

    @classmethod
    def from_state(cls, saved: dict[str, Any], rows: int | None = None) -> _Stream:
        """A stream restored from ``state_dict()``; ``rows`` when the state does not say."""
        data, size = saved["data"], int(saved["size"])
        stream = cls(
            int(saved.get("rows", rows or size)),
            int(data["ends"].shape[1]),
            _Storage.shapes_saved(data, skip="ends", lead=2),
        )
        for k, a in stream.arrays().items():
            a[:size] = data[k].numpy()
        stream.size, stream.pos, stream.min_rows = size, size % stream.rows, int(saved.get("min_rows", 0))
        return stream


class TransitionReplay:
    """Single transitions of one or more sources, ``capacity`` in all (see the module docstring); samples are
    ``TransitionBatch``es."""

    def __init__(self, capacity: int, n_step: int = 1, gamma: float = 0.99) -> None:
        """``capacity``: transitions held, summed over sources and copies (each source holds at least one rollout
        and its ``n_step`` window, whatever the capacity)."""
        if capacity < 1 or n_step < 1:
            raise ValueError(f"TransitionReplay needs capacity >= 1 and n_step >= 1, got {capacity} and {n_step}")
        self.capacity, self.n_step, self.gamma = capacity, n_step, gamma
        self.streams: dict[str, _Stream] = {}  # by source, in the order they registered

    def __len__(self) -> int:
        """Transitions that can be sampled (those whose n-step window and next row are already stored)."""
        return sum(s.complete(self.n_step) for s in self.streams.values())

    def insert(self, rollout: Rollout) -> None:
        """Append all ``T`` steps of ``rollout`` to its source's stream, registering the source on its first
        rollout; the oldest rows make room."""
        T, E = _lead(rollout)
        source, stream = rollout.source, self.streams.get(rollout.source)
        need = T + self.n_step + 1  # the rollout, and a window and successor for its first step
        if stream is None:
            shapes = _Storage.shapes_of(rollout)
            if self.streams:
                _check_same(source, shapes, next(iter(self.streams.values())).shapes)
            stream = _Stream(max(self._rows(E), need), E, shapes)
            stream.min_rows = need
            self.streams[source] = stream
            self._share()  # the others give up rows to the new copies
        elif stream.copies != E:
            raise ValueError(
                f"source {source!r} gave rollouts of {stream.copies} copies and now one of {E}: a source "
                f"keeps its copies (their episodes continue); give other copies another Rollout.source"
            )
        if need > stream.min_rows:
            stream.min_rows = need
            stream.resize(max(stream.rows, need))
        stream.write(rollout)

    def _rows(self, new_copies: int = 0) -> int:
        """The rows every source keeps: the capacity over all copies (with ``new_copies`` more)."""
        return -(-self.capacity // (sum(s.copies for s in self.streams.values()) + new_copies))

    def _share(self) -> None:
        """Give every stream the same rows (the capacity over all copies), but never fewer than it needs."""
        rows = self._rows()
        for s in self.streams.values():
            s.resize(max(rows, s.min_rows))

    def sample(self, batch: int, rng: np.random.Generator) -> TransitionBatch:
        """``batch`` transitions drawn uniformly from every source's complete ones: a stream per sample in
        proportion to its complete transitions (when several have some), then a row and a copy of it."""
        n = self.n_step
        streams = [s for s in self.streams.values() if s.complete(n)]
        if not streams:
            raise ValueError("the replay holds no complete n-step transition yet")
        if len(streams) == 1:
            which = np.zeros(batch, np.int64)
        else:
            counts = np.array([s.complete(n) for s in streams], np.float64)
            which = rng.choice(len(streams), size=batch, p=counts / counts.sum())
        out: dict[str, np.ndarray] = {}
        for k, s in enumerate(streams):
            at = np.flatnonzero(which == k)
            if len(at) == 0:
                continue
            i = rng.integers(0, s.size - n, size=len(at))  # age order: 0 is the oldest row
            e = rng.integers(0, s.copies, size=len(at))
            for name, a in s.gather(i, e, n, self.gamma).items():
                if name not in out:
                    out[name] = np.empty((batch, *a.shape[1:]), a.dtype)
                out[name][at] = a
        tensor = {k: torch.from_numpy(out[k]) for k in ("state", "next_state") if k in out}
        return TransitionBatch(
            {g: _group_sample(out, g) for g in streams[0].storage.groups}, tensor.get("state"), tensor.get("next_state")
        )

    def cut(self) -> None:
        """Mark every source's newest row as an episode end (not a termination): its next insert does not continue
        the episodes (a resumed run resets every copy)."""
        for s in self.streams.values():
            s.cut()

    def state_dict(self) -> dict[str, Any]:
        """Per source, its rows held, oldest first: ``{"streams": {source: {"rows", "min_rows", "size", "data"}}}``
        (``data``: ``"group/name"``, ``"state"``, ``"next_state"``, ``"ends"`` -> ``(size, copies, ...)``)."""
        return {"streams": {source: s.state_dict() for source, s in self.streams.items()}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore ``state_dict()``. A state without ``streams`` is one stream's ``{"size", "data"}`` and loads as
        the local source's, its ring as long as the capacity allows (``capacity / copies`` rows, or the rows held)."""
        if "streams" in saved:
            self.streams = {source: _Stream.from_state(st) for source, st in saved["streams"].items()}
        elif int(saved["size"]) == 0:
            self.streams = {}
        else:
            copies = int(saved["data"]["ends"].shape[1])
            rows = max(-(-self.capacity // copies), int(saved["size"]))
            self.streams = {LOCAL_SOURCE: _Stream.from_state(saved, rows)}


class EpisodeReplay:
    """``capacity`` slots of whole episodes, each ``max_len`` steps with a ``filled`` mask, shared by all sources; a
    ring over slots. Samples are ``EpisodeBatch``es."""

    def __init__(self, capacity: int, max_len: int, n_step: int = 1, gamma: float = 0.99) -> None:
        self.capacity, self.max_len, self.n_step, self.gamma = capacity, max_len, n_step, gamma
        self.shapes: Shapes | None = None  # what is stored, known from the first insert
        self.slots: _Storage | None = None
        self.filled: np.ndarray | None = None  # (capacity, max_len) steps that hold data
        self.current: dict[str, _Storage] = {}  # per source, each copy's episode in progress
        self.cursor: dict[str, np.ndarray] = {}  # per source, (copies,) steps in them so far
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        """Complete episodes stored."""
        return self.size

    def insert(self, rollout: Rollout) -> None:
        """Add every copy's ``T`` steps to its episode in progress (its source's, registered on its first rollout);
        store the episodes that end. An episode longer than ``max_len`` is stored in pieces, each piece ending as
        if truncated (bootstrapped)."""
        T, E = _lead(rollout)
        source = rollout.source
        if self.shapes is None or self.slots is None or self.filled is None:
            self.shapes = _Storage.shapes_of(rollout)
            self.slots = _Storage((self.capacity, self.max_len), self.shapes)
            self.filled = np.zeros((self.capacity, self.max_len), bool)
        if source not in self.current:
            _check_same(source, _Storage.shapes_of(rollout), self.shapes)
            self.current[source] = _Storage((E, self.max_len), self.shapes)
            self.cursor[source] = np.zeros(E, np.int64)
        elif len(self.cursor[source]) != E:
            raise ValueError(
                f"source {source!r} gave rollouts of {len(self.cursor[source])} copies and now one of "
                f"{E}: a source keeps its copies (their episodes continue); give other copies another "
                f"Rollout.source"
            )
        current, cursor = self.current[source], self.cursor[source]
        copies = np.arange(E)
        arrays = _group_arrays(rollout)
        ends = _episode_ends(rollout)
        state, next_state = rollout.state, rollout.next_state
        for t in range(T):  # one vectorised write of every copy per step
            for g, d in arrays.items():
                for k, v in d.items():
                    current.groups[g][k][copies, cursor] = v[t].numpy()
            current.write_state(
                (copies, cursor), None if state is None else state[t], None if next_state is None else next_state[t]
            )
            cursor += 1
            self._store(ends[t] | (cursor == self.max_len), self.slots, current, self.filled, cursor)

    def _store(
        self, done: np.ndarray, slot_data: _Storage, current: _Storage, filled: np.ndarray, cursor: np.ndarray
    ) -> None:
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

    def sample(self, batch: int, rng: np.random.Generator) -> EpisodeBatch:
        """``batch`` episodes drawn uniformly (see ``EpisodeBatch``)."""
        if self.size == 0 or self.slots is None or self.filled is None:
            raise ValueError("the replay holds no complete episode yet")
        idx = rng.integers(0, self.size, size=batch)
        filled = self.filled[idx]
        ends = ~np.concatenate([filled[:, 1:], np.zeros((batch, 1), bool)], axis=1)  # last filled step, and padding
        out: dict[str, np.ndarray] = {}
        last = np.zeros(filled.shape, np.int64)
        for g, s in self.slots.groups.items():
            d = {k: a[idx] for k, a in s.items()}
            d["returns"], d["discount"], last = n_step_returns(
                d.pop("rewards"), d.pop("terminated"), ends, self.gamma, self.n_step
            )
            if "mask" in d and "next_mask" not in d:  # no stored next mask: mask[t + 1], all true at the end
                d["next_mask"] = np.concatenate([d["mask"][:, 1:], np.ones_like(d["mask"][:, :1])], axis=1)
                d["next_mask"] |= ends[:, :, None, None]
            out.update({f"{g}/{k}": v for k, v in d.items()})
        state = None if self.slots.state is None else torch.from_numpy(self.slots.state["state"][idx])
        next_state = None if self.slots.state is None else torch.from_numpy(self.slots.state["next_state"][idx])
        return EpisodeBatch(
            {g: _group_sample(out, g) for g in self.slots.groups},
            torch.from_numpy(filled),
            torch.from_numpy(last),
            state,
            next_state,
        )

    def cut(self) -> None:
        """Drop the episodes in progress (a resumed run resets every copy, so they will not continue)."""
        self.current.clear()
        self.cursor.clear()

    def state_dict(self) -> dict[str, Any]:
        """The stored episodes, oldest first: ``{"size", "data"}`` (``data``: ``"group/name"``, ``"state"``,
        ``"next_state"``, ``"filled"`` -> ``(size, max_len, ...)``); episodes in progress are not saved."""
        if self.slots is None or self.filled is None:
            return {"size": 0}
        order = (self.pos - self.size + np.arange(self.size)) % self.capacity
        data = {k: torch.from_numpy(a[order]) for k, a in {**self.slots.arrays(), "filled": self.filled}.items()}
        return {"size": self.size, "data": data}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore ``state_dict()`` (episodes in progress are not saved: see ``cut``)."""
        self.cut()
        self.size, self.pos = int(saved["size"]), int(saved["size"]) % self.capacity
        if self.size == 0:
            self.shapes = self.slots = self.filled = None
            return
        data = saved["data"]
        self.shapes = _Storage.shapes_saved(data, skip="filled", lead=2)
        self.slots = _Storage((self.capacity, self.max_len), self.shapes)
        self.filled = np.zeros((self.capacity, self.max_len), bool)
        for k, a in {**self.slots.arrays(), "filled": self.filled}.items():
            a[: self.size] = data[k].numpy()
