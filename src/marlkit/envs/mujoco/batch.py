"""Many copies of one MuJoCo model stepped together: the physics engine of the batched MaMuJoCo envs.

``MjBatch`` holds one ``mujoco.MjData`` per copy and one flat float64 buffer ``raw`` of shape ``(num_envs, width)``
into which the fields the observations read (``qpos``, ``qvel``, ``cfrc_ext``, a body's ``xpos``, ...) of every copy
are gathered after each step, so observations, rewards and terminations are array code over all copies.

A step is one C call per copy, ``mujoco.mj_step(model, data, nstep=frame_skip)`` (followed by
``mj_rnePostConstraint`` when contact forces are read, as Gymnasium's ``MujocoEnv.do_simulation`` does), run over
``threads`` worker threads that each take a contiguous slice of the copies (MuJoCo releases the GIL while it steps).
This keeps every ``MjData`` alive between steps, with its solver warm start, so each copy computes exactly what
Gymnasium's single env computes. ``mujoco.rollout`` steps many states in C too, but from a state vector without the
warm start and without ``cfrc_ext``; ``benchmarks/mujoco_envs.py`` measures both.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Fields of ``MjData`` that may be gathered into ``raw``, with their per-copy shape as a function of the model.
FIELD_SHAPES = {
    "qpos": lambda m: (m.nq,),
    "qvel": lambda m: (m.nv,),
    "cinert": lambda m: (m.nbody, 10),
    "cvel": lambda m: (m.nbody, 6),
    "qfrc_actuator": lambda m: (m.nv,),
    "cfrc_ext": lambda m: (m.nbody, 6),
    "xpos": lambda m: (m.nbody, 3),
}


class MjBatch:
    """``num_envs`` copies of ``model``, each advanced ``frame_skip`` physics steps per ``step``; the ``fields`` of every
    copy gathered into ``raw`` (``slices[name]`` says where, flattened) after every step and reset."""

    def __init__(self, model: Any, num_envs: int, frame_skip: int, fields: Sequence[str], threads: int = 1) -> None:
        import mujoco

        if not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        unknown = [f for f in fields if f not in FIELD_SHAPES]
        if unknown:
            raise ValueError(f"cannot gather MjData fields {unknown}; known: {sorted(FIELD_SHAPES)}")
        self.model, self.num_envs, self.frame_skip = model, int(num_envs), int(frame_skip)
        self.threads = int(min(threads, num_envs))
        self.datas = [mujoco.MjData(model) for _ in range(self.num_envs)]
        self.slices: dict[str, slice] = {}
        width = 0
        for f in fields:
            size = int(np.prod(FIELD_SHAPES[f](model)))
            self.slices[f] = slice(width, width + size)
            width += size
        self.raw = np.zeros((self.num_envs, width))
        #: ``mj_rnePostConstraint`` fills cfrc_ext (and cacc, cfrc_int); Gymnasium calls it after every step.
        self._rne = any(f in fields for f in ("cfrc_ext",))
        self._pool: ThreadPoolExecutor | None = None

    # --------------------------------------------------------------------------------------------- stepping
    def step(self, ctrl: np.ndarray) -> None:
        """Advance every copy with controls ``ctrl`` ``(num_envs, nu)`` and gather the fields."""
        ctrl = np.ascontiguousarray(ctrl, dtype=np.float64)
        if self.threads == 1:
            self._step_slice(ctrl, 0, self.num_envs)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="marlkit-mujoco")
        bounds = np.linspace(0, self.num_envs, self.threads + 1).astype(int)
        futures = [self._pool.submit(self._step_slice, ctrl, lo, hi) for lo, hi in itertools.pairwise(bounds)]
        for f in futures:
            f.result()

    def _step_slice(self, ctrl: np.ndarray, lo: int, hi: int) -> None:
        import mujoco

        m, n, rne, raw = self.model, self.frame_skip, self._rne, self.raw
        fields = list(self.slices.items())
        for i in range(lo, hi):
            d = self.datas[i]
            d.ctrl[:] = ctrl[i]
            mujoco.mj_step(m, d, nstep=n)
            if rne:
                mujoco.mj_rnePostConstraint(m, d)
            row = raw[i]
            for name, s in fields:
                row[s] = getattr(d, name).ravel()

    def reset(self, mask: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Reset the copies where ``mask`` is true to ``qpos``/``qvel`` (one row per such copy), as Gymnasium's
        ``reset`` does: ``mj_resetData``, the state set, ``mj_forward``; then gather their fields."""
        import mujoco

        m = self.model
        for row, i in enumerate(np.flatnonzero(mask)):
            d = self.datas[i]
            mujoco.mj_resetData(m, d)
            d.qpos[:] = qpos[row]
            d.qvel[:] = qvel[row]
            mujoco.mj_forward(m, d)
            for name, s in self.slices.items():
                self.raw[i, s] = getattr(d, name).ravel()

    def field(self, name: str) -> np.ndarray:
        """The gathered field ``name`` of every copy, ``(num_envs, *shape)`` (a view of ``raw``)."""
        return self.raw[:, self.slices[name]].reshape(self.num_envs, *FIELD_SHAPES[name](self.model))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------------------------------------ copies
    def __getstate__(self) -> dict[str, Any]:
        # The MjData copies pickle themselves (MuJoCo's bindings); the thread pool is made again on the next step.
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> MjBatch:
        import copy

        new = object.__new__(MjBatch)
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        return new
