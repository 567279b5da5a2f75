"""Task sequences: ordered lists of env configs, each task a ``TaskEnv`` over a registered env.

A ``Task`` names an env id, its options and the changes of ``TaskEnv`` (relabelled actions, hidden observation
entries, fixed partners); a ``TaskSequence`` lays its tasks out in one shape (``layout``: the largest observation,
state and discrete action count, plus a one-hot task id) and turns each into the ``RunConfig`` one stage of the
continual trainer runs. Sequences whose tasks cannot share a learner — a different number of learning agents, or
continuous actions of different sizes — are refused with a ``ConfigError`` that names the tasks that differ.

Built-in sequences (``SEQUENCES``; ``sequence(name)``):

* ``foraging-controls`` — rule changes: level-based foraging on a 5x5 grid (2 agents, one food any agent can load)
  with the four moves relabelled differently in each of 6 tasks; what one task's policy does is wrong in the next.
* ``foraging-controls-large`` — the same on an 8x8 grid with 25-step episodes.
* ``foraging-layouts`` — scenario changes: grid size, number of food items, sight and cooperative loading.
* ``foraging-partners`` — partner changes: the learner plays agent 0; agent 1 is a fixed teammate that stands
  still, then moves at random (``partner_sequence`` builds one with frozen policies of one's own).
* ``foraging-comms`` — rule changes: the teammates' part of the observation switched on and off.
* ``spread-rules`` — rule changes on 2-agent cooperative navigation: reward weights (``local_ratio``) and remapped
  controls.
* ``pursuit-speed`` — scenario changes: ever faster evasive targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marlkit.core.config import ConfigError
from marlkit.core.errors import did_you_mean
from marlkit.lifelong.tasks import TASK_ENV_ID, TaskEnv, register_task_env


@dataclass(frozen=True)
class Task:
    """One task: ``base`` with ``kwargs``, seen through ``TaskEnv``'s changes."""

    name: str
    base: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    action_perm: tuple[int, ...] | None = None
    hide: tuple[int, ...] = ()
    partners: int = 0
    partner: str = "noop"
    success_threshold: float = 0.8
    """The success rate at which the task counts as mastered (steps-to-threshold of peer distillation)."""

    def env_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"base": self.base, "base_kwargs": dict(self.kwargs)}
        if self.action_perm is not None:
            out["action_perm"] = list(self.action_perm)
        if self.hide:
            out["hide"] = list(self.hide)
        if self.partners:
            out.update(partners=self.partners, partner=self.partner)
        return out


@dataclass(frozen=True)
class TaskSequence:
    """An ordered list of tasks laid out in one shape (see the module docstring)."""

    name: str
    tasks: tuple[Task, ...]

    def __post_init__(self) -> None:
        if len(self.tasks) < 1:
            raise ConfigError(f"sequence {self.name!r} has no tasks")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"sequence {self.name!r} repeats task names: {names}")

    def __len__(self) -> int:
        return len(self.tasks)

    def layout(self) -> dict[str, Any]:
        """``obs_dim``, ``state_dim``, ``num_actions`` (None: continuous) and ``num_tasks`` shared by every task."""
        register_task_env()
        envs = [TaskEnv(**t.env_kwargs()) for t in self.tasks]
        agents = {t.name: e.n_learn for t, e in zip(self.tasks, envs)}
        if len(set(agents.values())) != 1:
            raise ConfigError(
                f"sequence {self.name!r}: tasks must have the same number of learning agents (give the extra "
                f"agents to fixed partners, Task.partners); got {agents}"
            )
        discrete = {t.name: e.discrete for t, e in zip(self.tasks, envs)}
        if len(set(discrete.values())) != 1:
            raise ConfigError(f"sequence {self.name!r}: mixes discrete and continuous actions: {discrete}")
        num_actions: int | None = None
        if envs[0].discrete:
            num_actions = max(e.inner_n for e in envs)
        else:
            shapes = {t.name: e.group_action_space(e.group).shape for t, e in zip(self.tasks, envs)}
            if len(set(shapes.values())) != 1:
                raise ConfigError(
                    f"sequence {self.name!r}: continuous actions of different sizes cannot be padded: {shapes}"
                )
        return {
            "obs_dim": max(e.inner_obs_dim for e in envs),
            "state_dim": max(int(np.prod(e.inner.state_space.shape)) for e in envs),
            "num_actions": num_actions,
            "num_tasks": len(self.tasks),
        }

    def env_kwargs(self, index: int, layout: dict[str, Any] | None = None) -> dict[str, Any]:
        """``env.kwargs`` of task ``index`` for a ``task-v0`` run."""
        lay = self.layout() if layout is None else layout
        kw = {**self.tasks[index].env_kwargs(), "task_id": index, **lay}
        if lay["num_actions"] is None:
            kw.pop("num_actions")
        return kw

    def run_configs(
        self,
        algorithm: str,
        steps: int,
        seed: int = 0,
        num_envs: int = 16,
        eval_episodes: int = 32,
        sets: Sequence[str] = (),
        out: str = "runs",
    ) -> list[Any]:
        """One ``RunConfig`` per task (``task-v0``, ``steps`` env-steps, the code defaults beneath ``sets``)."""
        from marlkit.experiment.run import make_run_config

        lay = self.layout()
        return [
            make_run_config(
                algorithm,
                TASK_ENV_ID,
                sets=sets,
                preset="none",
                steps=steps,
                seed=seed,
                **{  # type: ignore[arg-type]
                    "env.kwargs": self.env_kwargs(i, lay),
                    "env.num_envs": num_envs,
                    "experiment.eval_episodes": eval_episodes,
                    "experiment.eval_every": 0,
                    "experiment.checkpoint_every": 0,
                    "experiment.log_every": steps,
                    "experiment.progress": False,
                    "experiment.gif": False,
                    "experiment.out": out,
                },
            )
            for i in range(len(self.tasks))
        ]


# ------------------------------------------------------------------------------------------------ built-ins
#: Foraging with 2 agents and one food any agent can load, short episodes: each stage trains in seconds.
_SMALL_FORAGING = {"size": 6, "num_food": 1, "max_agent_level": 1, "max_food_level": 1, "max_steps": 15}
#: Relabelled controls: in task k the learner's action a is the env's (a + k) mod 6 (NONE, four moves, LOAD), so
#: every two tasks disagree on what every action means.
_CONTROLS = tuple(tuple((a + k) % 6 for a in range(6)) for k in range(6))


def _foraging_controls() -> TaskSequence:
    tasks = tuple(
        Task(f"controls-{i}", "foraging-v0", dict(_SMALL_FORAGING), action_perm=perm)
        for i, perm in enumerate(_CONTROLS)
    )
    return TaskSequence("foraging-controls", tasks)


def _foraging_controls_large() -> TaskSequence:
    # The same relabelled controls on an 8x8 grid with longer episodes (more to explore per task than on 6x6).
    kw = {**_SMALL_FORAGING, "size": 8, "max_steps": 25}
    tasks = tuple(Task(f"large-controls-{i}", "foraging-v0", dict(kw), action_perm=p) for i, p in enumerate(_CONTROLS))
    return TaskSequence("foraging-controls-large", tasks)


def _foraging_layouts() -> TaskSequence:
    layouts = [
        dict(_SMALL_FORAGING),
        {**_SMALL_FORAGING, "size": 6, "num_food": 2},
        {**_SMALL_FORAGING, "size": 6, "num_food": 2, "sight": 2},
        {"size": 6, "num_food": 1, "max_agent_level": 1, "force_coop": True, "max_steps": 25},
        {**_SMALL_FORAGING, "size": 7, "num_food": 2, "max_steps": 25},
    ]
    return TaskSequence(
        "foraging-layouts", tuple(Task(f"layout-{i}", "foraging-v0", kw) for i, kw in enumerate(layouts))
    )


def partner_sequence(partners: Sequence[str], name: str = "foraging-partners") -> TaskSequence:
    """Foraging (2 agents) where the learner plays agent 0 and each task's agent 1 is ``partners[i]``: ``"noop"``,
    ``"random"`` or the path of a frozen policy file of the 2-agent game (``torch.save(policy.policy_state(), p)``)."""
    kw = {**_SMALL_FORAGING, "size": 6}
    tasks = tuple(Task(f"partner-{i}", "foraging-v0", kw, partners=1, partner=p) for i, p in enumerate(partners))
    return TaskSequence(name, tasks)


def _foraging_comms() -> TaskSequence:
    # Observation: food (y, x, level), then itself (3), then the teammate (3): columns 6..8 are the teammate.
    kw = {**_SMALL_FORAGING, "size": 6, "force_coop": True, "max_food_level": None, "max_steps": 25}
    on, off = (), (6, 7, 8)
    return TaskSequence(
        "foraging-comms",
        tuple(
            Task(f"comms-{'off' if h else 'on'}-{i}", "foraging-v0", kw, hide=h)
            for i, h in enumerate((on, off, on, off))
        ),
    )


def _spread_rules() -> TaskSequence:
    base = {"num_agents": 2, "max_steps": 25}
    tasks = (
        Task("global-reward", "spread-v0", {**base, "local_ratio": 0.0}, success_threshold=0.5),
        Task("mixed-reward", "spread-v0", {**base, "local_ratio": 0.5}, success_threshold=0.5),
        Task(
            "mirrored-controls",
            "spread-v0",
            {**base, "local_ratio": 0.5},
            action_perm=(0, 2, 1, 4, 3),
            success_threshold=0.5,
        ),
        Task("local-reward", "spread-v0", {**base, "local_ratio": 0.9}, success_threshold=0.5),
    )
    return TaskSequence("spread-rules", tasks)


def _pursuit_speed() -> TaskSequence:
    speeds = (0.4, 0.6, 0.8, 1.0)
    return TaskSequence(
        "pursuit-speed",
        tuple(Task(f"target-speed-{s}", "pursuit-v0", {"target_speed": s, "max_steps": 50}) for s in speeds),
    )


SEQUENCES = {
    "foraging-controls": _foraging_controls,
    "foraging-controls-large": _foraging_controls_large,
    "foraging-layouts": _foraging_layouts,
    "foraging-partners": lambda: partner_sequence(["noop", "random", "noop", "random"]),
    "foraging-comms": _foraging_comms,
    "spread-rules": _spread_rules,
    "pursuit-speed": _pursuit_speed,
}


def sequence(name: str, num_tasks: int | None = None) -> TaskSequence:
    """The built-in sequence ``name`` (its first ``num_tasks`` tasks when given); a YAML file's sequence is
    ``marlkit.lifelong.sequence_file.any_sequence``'s."""
    if name not in SEQUENCES:
        raise ConfigError(
            f"unknown sequence {name!r}{did_you_mean(name, SEQUENCES)} (built in: {', '.join(SEQUENCES)}; "
            f"or a .yaml file of tasks)"
        )
    return first_tasks(SEQUENCES[name](), num_tasks)


def first_tasks(seq: TaskSequence, num_tasks: int | None) -> TaskSequence:
    """``seq`` cut to its first ``num_tasks`` tasks (None: all)."""
    if num_tasks is not None:
        if not 1 <= num_tasks <= len(seq):
            raise ConfigError(f"num_tasks = {num_tasks} is not allowed for {seq.name}: 1 to {len(seq)}")
        seq = TaskSequence(seq.name, seq.tasks[:num_tasks])
    return seq
