"""Multi-Agent MuJoCo (MaMuJoCo), batched: one robot body split into agents that each drive some of its joints.

Peng et al. 2021, "FACMAC: Factored Multi-Agent Centralised Policy Gradients" (NeurIPS, https://arxiv.org/abs/2003.06709)
introduced the benchmark; Gymnasium-Robotics maintains it as ``gymnasium_robotics.mamujoco_v1`` on Gymnasium's v5
MuJoCo envs, whose observations, rewards and terminations these envs reproduce (checked step for step against
``mamujoco_v1.parallel_env`` in ``tests/envs/test_mujoco.py``).

* **Agents** ``agent_0`` … ``agent_{n-1}`` as MaMuJoCo's partition ``agent_conf`` (``"2x3"``: two agents of three
  joints) assigns the joints. Agents with equal observation and action sizes form one group ``"agents"``; otherwise
  each agent is its own group (named after it).
* **Observations** of each agent: MaMuJoCo's (its joints' positions and velocities, those of the joints up to
  ``agent_obsk`` hops away in the body graph, and the root's), as float32. They are gathered from the copies'
  ``MjData`` fields with one index array per group, found once at construction by evaluating MaMuJoCo's own
  ``build_obs`` on coded stand-in data (so any partition MaMuJoCo defines for these bodies works without a table
  here); clips it applies (Ant's contact forces to [-1, 1], Hopper's velocities to [-10, 10]) are found the same way.
* **State** for centralised critics: the single-agent Gymnasium observation (MaMuJoCo's ``state()``).
* **Actions**: ``Box(-1, 1)`` per agent (its joints' torques, in partition order), assembled into the body's action.
* **Reward**: the Gymnasium v5 reward of the whole body (forward velocity, healthy bonus, control and contact costs),
  given to every agent.
* **Termination** as in Gymnasium (Ant, Walker2d and Hopper when unhealthy; HalfCheetah and Swimmer never), for every
  agent; **truncation** after ``max_steps`` (Gymnasium's time limit, 1000).
* **Metrics**: ``x_distance``: how far the body moved forward during the episode (metres).

Reset draws each copy's noise from the env's one generator in Gymnasium's order (uniform ``qpos`` noise, then the
``qvel`` noise), so ``num_envs=1`` reset with seed ``s`` starts where ``mamujoco_v1.parallel_env(...).reset(seed=s)``
does. Stepping is ``MjBatch``'s (``threads`` worker threads over the copies). Rendering uses MuJoCo's offscreen
renderer and needs an OpenGL backend (EGL or OSMesa; see ``render_backend``).

Needs ``pip install 'marlkit[mujoco]'`` (gymnasium-robotics, mujoco).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import Dynamics, MultiAgentEnv, Obs
from marlkit.envs.mujoco.batch import FIELD_SHAPES, MjBatch

# MuJoCo picks its OpenGL backend when it is first imported: headless machines need EGL (or OSMesa) rather than GLFW.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"


@dataclass(frozen=True)
class Scenario:
    """What Gymnasium's v5 env of a body computes besides the physics (its constructor's defaults)."""

    gym_id: str
    ctrl_cost: float
    reset_noise: float
    qvel_noise: str
    """``"normal"``: qvel + scale * N(0, 1) (HalfCheetah, Ant); ``"uniform"``: qvel + U(-scale, scale)."""
    forward_body: int | None = None
    """Forward velocity from this body's ``xpos`` (Ant's torso) instead of ``qpos[0]``."""
    healthy_reward: float = 0.0
    contact_cost: float = 0.0
    terminates: bool = False


SCENARIOS = {
    "HalfCheetah": Scenario("HalfCheetah-v5", ctrl_cost=0.1, reset_noise=0.1, qvel_noise="normal"),
    "Ant": Scenario(
        "Ant-v5",
        ctrl_cost=0.5,
        reset_noise=0.1,
        qvel_noise="normal",
        forward_body=1,
        healthy_reward=1.0,
        contact_cost=5e-4,
        terminates=True,
    ),
    "Walker2d": Scenario(
        "Walker2d-v5", ctrl_cost=1e-3, reset_noise=5e-3, qvel_noise="uniform", healthy_reward=1.0, terminates=True
    ),
    "Hopper": Scenario(
        "Hopper-v5", ctrl_cost=1e-3, reset_noise=5e-3, qvel_noise="uniform", healthy_reward=1.0, terminates=True
    ),
    "Swimmer": Scenario("Swimmer-v5", ctrl_cost=1e-4, reset_noise=0.1, qvel_noise="uniform"),
}


def _healthy(name: str, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    """Gymnasium's ``is_healthy`` of every copy."""
    if name == "Ant":
        finite = np.isfinite(qpos).all(-1) & np.isfinite(qvel).all(-1)
        return finite & (qpos[:, 2] >= 0.2) & (qpos[:, 2] <= 1.0)
    z, angle = qpos[:, 1], qpos[:, 2]
    if name == "Walker2d":
        return (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    if name == "Hopper":
        rest = np.concatenate([qpos[:, 2:], qvel], axis=1)
        return ((rest > -100.0) & (rest < 100.0)).all(-1) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
    return np.ones(len(qpos), dtype=bool)


def _reference(scenario: str, agent_conf: str, agent_obsk: int) -> Any:
    """MaMuJoCo's own env of this body and partition (the source of the model, partitions and observations)."""
    try:
        # gymnasium_robotics prints a notice about its Adroit hand envs when imported; none of it concerns MaMuJoCo.
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            from gymnasium_robotics import mamujoco_v1
    except ImportError as e:
        raise ImportError("the MaMuJoCo envs need gymnasium-robotics and mujoco: pip install 'marlkit[mujoco]'") from e
    import mujoco

    # Gymnasium's half_cheetah.xml uses a compiler attribute MuJoCo 3.3+ deprecates: its warning would be printed at
    # every build and appended to MUJOCO_LOG.TXT in the working directory. Other MuJoCo warnings still show.
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(
        lambda msg: None if "settotalmass" in msg else warnings.warn(f"MuJoCo: {msg}", stacklevel=2)
    )
    try:
        return mamujoco_v1.parallel_env(scenario, agent_conf, agent_obsk=agent_obsk)
    except Exception as e:  # noqa: BLE001 - MaMuJoCo raises a bare Exception for an unknown partition
        raise ValueError(f"MaMuJoCo has no partition agent_conf={agent_conf!r} of {scenario}: {e}") from None
    finally:
        mujoco.set_mju_user_warning(previous)


# ------------------------------------------------------------------------------------- observation probing
_CODE = 1e-6  # stand-in values (index + 1) * _CODE stay inside every clip MaMuJoCo applies (|x| <= 1)
_BIG = 1e9


def _probe(fn: Any, model: Any, fields: dict[str, slice], fill: float | None, scale: float = _CODE) -> np.ndarray:
    """``fn(data)`` on stand-in data whose every entry is ``(its index in raw + 1) * scale`` (or ``fill``)."""
    data = {}
    for name, s in fields.items():
        shape = FIELD_SHAPES[name](model)
        values = (
            (np.arange(s.start, s.stop, dtype=np.float64) + 1) * scale
            if fill is None
            else np.full(s.stop - s.start, fill)
        )
        data[name] = values.reshape(shape)
    return np.asarray(fn(SimpleNamespace(**data)), dtype=np.float64)


def _gather(fn: Any, model: Any, fields: dict[str, slice], what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The index into ``raw`` of each element of ``fn(data)`` and the clip bounds applied to it: ``fn`` must pick
    entries of the data (and may clip them), which two codings must agree on."""
    coded = _probe(fn, model, fields, None)
    index = np.rint(coded / _CODE).astype(np.int64) - 1
    again = np.rint(_probe(fn, model, fields, None, 3 * _CODE) / (3 * _CODE)).astype(np.int64) - 1
    if not (np.allclose(coded, (index + 1) * _CODE, rtol=1e-9, atol=0) and np.array_equal(index, again)):
        raise NotImplementedError(f"{what} is not a selection of MjData entries; this scenario is not supported")
    hi, lo = _probe(fn, model, fields, _BIG), _probe(fn, model, fields, -_BIG)
    return index, np.where(lo > -_BIG, lo, -np.inf), np.where(hi < _BIG, hi, np.inf)


class MaMuJoCo(MultiAgentEnv):
    """``num_envs`` copies of a MaMuJoCo body and partition; see the module docstring."""

    max_steps: int

    def __init__(
        self,
        scenario: str = "HalfCheetah",
        agent_conf: str = "2x3",
        agent_obsk: int = 1,
        max_steps: int = 1000,
        threads: int = 1,
        render_size: tuple[int, int] = (240, 320),
        num_envs: int = 1,
        seed: int | None = None,
    ) -> None:
        super().__init__(num_envs, seed)
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown MaMuJoCo scenario {scenario!r}; supported: {', '.join(SCENARIOS)}")
        if not isinstance(agent_obsk, (int, np.integer)) or isinstance(agent_obsk, bool) or agent_obsk < 0:
            raise ValueError(f"agent_obsk (observation depth in joints) must be an integer >= 0, got {agent_obsk!r}")
        if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        self.scenario, self.body = scenario, SCENARIOS[scenario]
        self.agent_conf, self.agent_obsk, self.max_steps = agent_conf, int(agent_obsk), int(max_steps)
        self.render_size = (int(render_size[0]), int(render_size[1]))
        ref = _reference(scenario, agent_conf, int(agent_obsk))
        gym = ref.single_agent_env.unwrapped
        self.model = gym.model
        self.init_qpos, self.init_qvel = gym.init_qpos.copy(), gym.init_qvel.copy()
        self.dt = float(gym.dt)
        self.metadata = {**MultiAgentEnv.metadata, "render_fps": round(1.0 / self.dt), "name": f"mamujoco-{scenario}"}
        names = ["qpos", "qvel", "cinert", "cvel", "qfrc_actuator", "cfrc_ext"]
        fields = {n: slice(0, 0) for n in names}
        width = 0
        for n in names:
            size = int(np.prod(FIELD_SHAPES[n](self.model)))
            fields[n] = slice(width, width + size)
            width += size

        # Where each agent's observation and the state come from, in the coding of all fields laid end to end.
        from gymnasium_robotics.envs.multiagent_mujoco.obsk import build_obs

        def agent_fn(i: int) -> Any:
            return lambda d: build_obs(
                d, ref.k_dicts[i], ref.local_categories, ref.mujoco_globals, ref.global_categories
            )

        def state_fn(d: Any) -> Any:
            real = gym.data
            gym.data = d  # Gymnasium's _get_obs reads self.data
            try:
                return gym._get_obs()
            finally:
                gym.data = real

        agent_maps = [
            _gather(agent_fn(i), self.model, fields, f"agent_{i}'s observation")
            for i in range(len(ref.possible_agents))
        ]
        state_map = _gather(state_fn, self.model, fields, "the state")
        # Gather only the fields read (and the forward body's position), in the layout MjBatch keeps.
        used = sorted({int(j) for m in (*agent_maps, state_map) for j in m[0]})
        read = [n for n in names if any(fields[n].start <= j < fields[n].stop for j in used)]
        if self.body.contact_cost and "cfrc_ext" not in read:
            read.append("cfrc_ext")
        for n in ("qpos", "qvel"):
            if n not in read:
                read.insert(0, n)
        if self.body.forward_body is not None:
            read.append("xpos")
        self._batch = MjBatch(self.model, self.num_envs, gym.frame_skip, read, threads)
        remap = np.full(width, -1, dtype=np.int64)
        for n in read:
            if n in fields:
                remap[fields[n]] = np.arange(self._batch.slices[n].start, self._batch.slices[n].stop)

        def relocate(m: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return remap[m[0]], m[1], m[2]

        agent_maps = [relocate(m) for m in agent_maps]
        self._state_map = relocate(state_map)
        # Actions: agent i's k-th action drives actuator act_index[i][k] of the body.
        act_index = [np.array([node.act_ids for node in part], dtype=np.int64) for part in ref.agent_action_partitions]
        low, high = float(gym.action_space.low[0]), float(gym.action_space.high[0])
        ids = tuple(ref.possible_agents)
        same = len({(len(m[0]), len(a)) for m, a in zip(agent_maps, act_index)}) == 1
        groups = {"agents": ids} if same else {a: (a,) for a in ids}
        self._obs_maps: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._act_index: dict[str, np.ndarray] = {}
        obs_spaces, act_spaces = {}, {}
        for g, members in groups.items():
            rows = [ids.index(a) for a in members]
            index, lo, hi = (np.stack([agent_maps[r][k] for r in rows]) for k in range(3))
            self._obs_maps[g] = (index, lo, hi)
            self._act_index[g] = np.stack([act_index[r] for r in rows])
            obs_spaces[g] = spaces.Box(-np.inf, np.inf, (len(agent_maps[rows[0]][0]),), np.float32)
            act_spaces[g] = spaces.Box(low, high, (len(act_index[rows[0]]),), np.float32)
        covered = np.sort(np.concatenate([a.ravel() for a in self._act_index.values()]))
        assert np.array_equal(covered, np.arange(self.model.nu)), "every actuator is driven by exactly one agent"
        state_space = spaces.Box(-np.inf, np.inf, (len(self._state_map[0]),), np.float32)
        self._set_spaces(groups, obs_spaces, act_spaces, state_space)
        ref.close()
        self._forward_before = np.zeros(self.num_envs)
        self._renderer: Any = None

    # ------------------------------------------------------------------------------------------- dynamics
    def _forward_position(self) -> np.ndarray:
        if self.body.forward_body is None:
            return self._batch.field("qpos")[:, 0].copy()
        return self._batch.field("xpos")[:, self.body.forward_body, 0].copy()

    def _reset_copies(self, mask: np.ndarray) -> None:
        n, s, rng = int(mask.sum()), self.body.reset_noise, self.np_random
        nq, nv = self.model.nq, self.model.nv
        qpos = np.empty((n, nq))
        qvel = np.empty((n, nv))
        for row in range(n):  # Gymnasium's draw order, copy after copy
            qpos[row] = self.init_qpos + rng.uniform(-s, s, size=nq)
            if self.body.qvel_noise == "normal":
                qvel[row] = self.init_qvel + s * rng.standard_normal(nv)
            else:
                qvel[row] = self.init_qvel + rng.uniform(-s, s, size=nv)
        self._batch.reset(mask, qpos, qvel)
        self._forward_before[mask] = self._forward_position()[mask]

    def _step_dynamics(self, actions: dict[str, np.ndarray]) -> Dynamics:
        ctrl = np.empty((self.num_envs, self.model.nu))
        for g, idx in self._act_index.items():
            ctrl[:, idx.ravel()] = actions[g].reshape(self.num_envs, -1)
        self._batch.step(ctrl)
        after = self._forward_position()
        moved = after - self._forward_before
        self._forward_before = after
        spec = self.body
        reward = moved / self.dt - spec.ctrl_cost * np.square(ctrl).sum(-1)
        qpos, qvel = self._batch.field("qpos"), self._batch.field("qvel")
        healthy = _healthy(self.scenario, qpos, qvel)
        if spec.healthy_reward:
            reward = reward + spec.healthy_reward * healthy
        if spec.contact_cost:
            reward = reward - spec.contact_cost * np.square(np.clip(self._batch.field("cfrc_ext"), -1.0, 1.0)).sum(
                (1, 2)
            )
        done = ~healthy if spec.terminates else np.zeros(self.num_envs, dtype=bool)
        rewards = {g: np.repeat(reward[:, None], len(ids), axis=1) for g, ids in self.groups.items()}
        terminated = {g: np.repeat(done[:, None], len(ids), axis=1) for g, ids in self.groups.items()}
        return rewards, terminated, {"x_distance": moved}

    def _gather_obs(self, m: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        index, lo, hi = m
        return np.clip(self._batch.raw[:, index], lo, hi).astype(np.float32)

    def _observe(self) -> Obs:
        return {g: self._gather_obs(m) for g, m in self._obs_maps.items()}

    def _state(self) -> np.ndarray:
        return self._gather_obs(self._state_map)

    # ------------------------------------------------------------------------------------------- rendering
    @property
    def renders(self) -> bool:
        return render_backend() is not None

    def _render_copy(self, index: int) -> np.ndarray:
        if self._renderer is None:
            backend = render_backend()
            if backend is None:
                raise NotImplementedError(NO_GL_MESSAGE)
            import mujoco

            height, width = self.render_size
            self._renderer = mujoco.Renderer(self.model, height, width)
            self._camera = mujoco.MjvCamera()
            self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            self._camera.trackbodyid = 1
            self._camera.distance = 4.0 if self.scenario != "Ant" else 6.0
            self._camera.elevation = -20.0
        self._renderer.update_scene(self._batch.datas[index], self._camera)
        return np.asarray(self._renderer.render(), dtype=np.uint8)

    def close(self) -> None:
        self._batch.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_renderer": None}


NO_GL_MESSAGE = (
    "MuJoCo rendering needs an OpenGL backend and none works here: set MUJOCO_GL=egl (a GPU or Mesa's EGL, package "
    "libegl1) or MUJOCO_GL=osmesa (CPU, package libosmesa6) before marlkit or mujoco is imported; training and "
    "evaluation do not need it"
)
_BACKEND: list[str | None] = []


def render_backend() -> str | None:
    """The OpenGL backend MuJoCo renders with in this process (``MUJOCO_GL``), or None when none can make a context.
    Tried once per process."""
    if not _BACKEND:
        try:
            import mujoco

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                renderer = mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8)
                renderer.render()
                renderer.close()
            _BACKEND.append(os.environ.get("MUJOCO_GL", "glfw"))
        except Exception:  # noqa: BLE001 - any failure to make a GL context means "cannot render here"
            _BACKEND.append(None)
    return _BACKEND[0]
