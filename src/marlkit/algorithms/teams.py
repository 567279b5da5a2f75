"""Mixed teams: a different learner, or a fixed policy, for each group of one environment.

Every algorithm here trains *all* groups of an env. ``teams`` splits the groups among **members**, each a
registered algorithm with its own config, a uniformly random policy, a constant action, or the frozen policy of
a trained run; predators trained with MADDPG against a random prey on ``tag-v0`` is::

    algorithm: teams
    env: {id: tag-v0, num_envs: 16}
    algo:
      members:
        predators: {groups: [adversaries], algorithm: maddpg, config: {batch_size: 512}}
        prey:      {groups: [good], policy: random}

A member sees only its groups. It is built on a ``GroupView`` of the env (its groups and their spaces, the global
state space, ``num_envs``, ``max_steps``; nothing else) and, each step, gets its groups' observations and
``info`` entries (masks, ``active``, ...) plus the global state if it asks for it (``uses_state``); the actions of
all members are merged into the dict ``env.step`` takes. After each collection every learning member is updated on
its groups' part of the rollout. So a member that models the others (MADDPG's centralised critics, QMIX's mixer)
models only its own team: the other teams' agents are part of its environment, seen through the global state.

One collector steps the env for all members, ``rollout_steps`` steps at a time (by default the longest
``rollout_steps`` among the learning members). A learner whose own ``rollout_steps`` is shorter is updated on
consecutive slices of its own length, so an off-policy learner (MADDPG, IQL) keeps its ratio of gradient steps to
env-steps; the collection length must therefore be a multiple of each learner's ``rollout_steps``. An on-policy
learner (PPO, A2C) should keep the collection length as its own ``rollout_steps``: its later slices would have been
collected by a policy it has already updated.

Checkpoints hold every learning member's state and the random policies' generators; a frozen member records which
checkpoint it loaded and loads that same one again on resume. A frozen member reads only the weights-only policy a
checkpoint holds (``marlkit.core.rundir``): no learner, optimiser or replay is rebuilt, and no code runs.
Evaluation needs nothing special: the runner reports every group's return (``group_return`` in ``eval.json``) and
the env's task metrics; ``team_returns`` regroups them by member (``eval_extras`` adds that to the report).

``policy()`` is a ``TeamsPolicy``: every member's own snapshot acting for its groups. It and the fixed policies
(``RandomPolicy``, ``ConstantPolicy``, ``FrozenPolicy``, each a weights-only policy itself) live in
``marlkit.algorithms.team_policies``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from marlkit.algorithms.registry import algo_config, algo_spec, unsupported_reason
from marlkit.algorithms.team_policies import (
    ConstantPolicy,
    FrozenPolicy,
    RandomPolicy,
    TeamsPolicy,
    act_parts,
    member_seeds,
)
from marlkit.core import Capabilities, LearnerBase, PolicySpaces, Progress
from marlkit.core.config import ConfigError, from_dict
from marlkit.core.errors import did_you_mean
from marlkit.data.rollout import Rollout

FIXED_POLICIES = ("random", "constant")


@dataclass(frozen=True)
class MemberConfig:
    """One member of the teams: the groups it plays and who plays them (exactly one of ``algorithm``, ``policy``,
    ``frozen``)."""

    groups: tuple[str, ...] = ()
    """The env groups this member controls (see `marlkit envs`); a group belongs to exactly one member."""
    algorithm: str | None = None
    """A registered algorithm that learns for these groups (see `marlkit algos`)."""
    config: Any = None
    """That algorithm's config (what its `algo:` section would be); unset fields take its defaults."""
    policy: Literal["random", "constant"] | None = None
    """A fixed policy: random (uniform over the allowed actions) or constant (always `action`)."""
    action: Any = None
    """The action of policy: constant, e.g. 0 (a Discrete action; the no-op of the particle envs) or a list (Box)."""
    frozen: str | None = None
    """A run directory whose trained policy plays these groups without learning."""
    checkpoint: str | None = None
    """For frozen: a checkpoint file of that run instead of its latest."""
    explore: bool = False
    """For frozen: act as while training (sampling, exploration noise) instead of greedily."""


@dataclass(frozen=True)
class TeamsConfig:
    """Who plays which groups; each member's own hyper-parameters live in its ``config``."""

    members: dict[str, MemberConfig] = field(default_factory=dict)
    """Member name -> {groups: [...], and one of algorithm (+ config), policy (random|constant, + action), frozen:
    RUN_DIR}. Every group of the env must belong to exactly one member."""
    rollout_steps: int | None = None
    """Steps of every copy collected before each update; default the longest rollout_steps of the learning members
    (each learner is updated on slices of its own rollout_steps, which must divide this)."""

    def __post_init__(self) -> None:
        if not isinstance(self.members, dict):
            raise ConfigError(f"algo.members must be a mapping of member name -> member, got {self.members!r}")
        members = {name: _member(str(name), m) for name, m in self.members.items()}
        owner: dict[str, str] = {}
        for name, m in members.items():
            for g in m.groups:
                if g in owner:
                    raise ConfigError(
                        f"group {g!r} is assigned twice, to members {owner[g]!r} and {name!r}; "
                        f"a group belongs to exactly one member"
                    )
                owner[g] = name
        object.__setattr__(self, "members", members)
        if self.rollout_steps is not None and self.rollout_steps < 1:
            raise ConfigError(
                f"algo.rollout_steps = {self.rollout_steps!r} is not allowed: an integer >= 1, or null "
                f"for the longest rollout_steps of the learning members"
            )
        collection_steps(self)  # the learners' rollout_steps must divide it


def _member(name: str, data: Any) -> MemberConfig:
    """A member from YAML data (or as it is), checked; errors name ``algo.members.NAME``."""
    where = f"algo.members.{name}"
    if isinstance(data, MemberConfig):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(MemberConfig)}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping such as {{groups: [adversaries], algorithm: maddpg}} or "
            f"{{groups: [good], policy: random}}, got {data!r}"
        )
    data = dict(data)
    if isinstance(data.get("groups"), str):
        data["groups"] = [data["groups"]]
    m = from_dict(MemberConfig, data, f"{where}.")
    if not m.groups:
        raise ConfigError(
            f"{where}.groups is missing: name the env groups this member controls, e.g. "
            f"groups: [adversaries] (see `marlkit envs`)"
        )
    kinds = [k for k in ("algorithm", "policy", "frozen") if getattr(m, k) is not None]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where} needs exactly one of algorithm (a registered learner), policy "
            f"({' or '.join(FIXED_POLICIES)}) or frozen (a run directory), got "
            f"{', '.join(kinds) or 'none'}"
        )
    if m.algorithm is not None:
        if m.algorithm == "teams":
            raise ConfigError(
                f"{where}.algorithm = 'teams' is not allowed: a member is one learner (or a fixed "
                f"policy); give the groups of the inner teams their own members instead"
            )
        m = dataclasses.replace(m, config=algo_config(m.algorithm, m.config, f"{where}.config", f"{where}.algorithm"))
    elif m.config is not None:
        raise ConfigError(
            f"{where}.config is only for a learning member (algorithm: ...); a {kinds[0]} member has "
            f"no hyper-parameters"
        )
    if (m.action is not None) != (m.policy == "constant"):
        raise ConfigError(
            f"{where}.action goes with policy: constant, and policy: constant needs an action (e.g. action: 0)"
        )
    if m.frozen is None and (m.checkpoint is not None or m.explore):
        raise ConfigError(f"{where}: checkpoint and explore are options of a frozen member (frozen: RUN_DIR)")
    return m


def collection_steps(config: TeamsConfig) -> int:
    """Steps of every copy per collection: ``config.rollout_steps`` or the longest among the learners', checked to
    be a multiple of every learner's."""
    own = {name: m.config.rollout_steps for name, m in config.members.items() if m.algorithm is not None}
    steps = config.rollout_steps or max(own.values(), default=1)
    for name, r in own.items():
        if steps % r:
            raise ConfigError(
                f"algo.members.{name}.config.rollout_steps = {r} does not divide the {steps} steps collected per "
                f"update (the longest learner's, or algo.rollout_steps); each learner is updated on slices of its "
                f"own rollout_steps: make it a divisor of {steps} or set algo.rollout_steps to a common multiple "
                f"({np.lcm.reduce(list(own.values()))})"
            )
    return steps


# ------------------------------------------------------------------------------------------------ the env view
class GroupView:
    """The env as a member sees it: only ``groups`` (in the env's order) with their spaces, the global state
    space, the number of copies and the time limit. Everything an algorithm's constructor reads; nothing that
    steps the env."""

    def __init__(self, env: Any, groups: tuple[str, ...]) -> None:
        self.groups = {g: ids for g, ids in env.groups.items() if g in groups}
        self.agents = tuple(a for ids in self.groups.values() for a in ids)
        self.state_space = env.state_space
        self.num_envs = env.num_envs
        self.max_steps = env.max_steps
        self.finite_observations = getattr(env, "finite_observations", False)
        self.metadata = env.metadata
        self._env = env

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._env.observation_space(self._own(agent))

    def action_space(self, agent: str) -> spaces.Space:
        return self._env.action_space(self._own(agent))

    def group_observation_space(self, group: str) -> spaces.Space:
        return self._env.group_observation_space(self._group(group))

    def group_action_space(self, group: str) -> spaces.Space:
        return self._env.group_action_space(self._group(group))

    def _group(self, g: str) -> str:
        if g not in self.groups:
            raise KeyError(f"group {g!r} is not one of this member's groups {tuple(self.groups)}")
        return g

    def _own(self, agent: str) -> str:
        if agent not in self.agents:
            raise KeyError(f"agent {agent!r} is not one of this member's agents {self.agents}")
        return agent

    def __repr__(self) -> str:
        return f"GroupView({self._env!r}, groups={tuple(self.groups)})"


def split_rollout(rollout: Rollout, groups: dict[str, Any], with_state: bool, steps: slice = slice(None)) -> Rollout:
    """The part of ``rollout`` that belongs to ``groups``, time steps ``steps``; the global state only if
    ``with_state``. Tensors are views of the original."""

    def part(d: dict[str, Any]) -> dict[str, Any]:
        return {g: d[g][steps] for g in groups if g in d}

    mask = None if rollout.action_mask is None else part(rollout.action_mask)
    next_mask = None if rollout.next_action_mask is None else part(rollout.next_action_mask)
    state = rollout.state[steps] if with_state and rollout.state is not None else None
    next_state = rollout.next_state[steps] if with_state and rollout.next_state is not None else None
    return Rollout(
        part(rollout.obs),
        part(rollout.actions),
        part(rollout.rewards),
        part(rollout.terminated),
        part(rollout.truncated),
        part(rollout.next_obs),
        part(rollout.active),
        mask or None,
        state,
        next_state,
        {g: {k: v[steps] for k, v in rollout.extras[g].items()} for g in groups},
        next_mask or None,
        rollout.source,
    )


# ---------------------------------------------------------------------------------------------------- the teams
@dataclass
class Member:
    """A built member: its view of the env and its policy (a learning algorithm or a fixed policy)."""

    name: str
    view: GroupView
    policy: Any
    learns: bool
    rollout_steps: int


class Teams(LearnerBase):
    """Every member acting for its groups; learning members updated on their part of each rollout."""

    def __init__(self, env: Any, config: TeamsConfig, seed: int = 0) -> None:
        steps = collection_steps(config)
        self.config = dataclasses.replace(config, rollout_steps=steps)  # the runner collects config.rollout_steps
        assigned = {g: name for name, m in config.members.items() for g in m.groups}
        for g, name in assigned.items():
            if g not in env.groups:
                hint = did_you_mean(g, env.groups)
                raise ConfigError(
                    f"algo.members.{name}.groups: {g!r} is not a group of this env{hint} "
                    f"(its groups: {', '.join(env.groups)})"
                )
        if not config.members:
            raise ConfigError(
                f"teams needs algo.members: who plays each of this env's groups ({', '.join(env.groups)}), "
                f"e.g. in a --config file as examples/configs/tag_maddpg_vs_random.yaml does"
            )
        if missing := [g for g in env.groups if g not in assigned]:
            raise ConfigError(
                f"group(s) {', '.join(map(repr, missing))} of this env belong to no member; every group "
                f"({', '.join(env.groups)}) needs one (e.g. {{groups: [{missing[0]}], policy: random}})"
            )
        seeds = np.random.SeedSequence(seed).spawn(len(config.members))
        self.members: dict[str, Member] = {}
        for (name, m), child in zip(config.members.items(), seeds):
            view, member_seed, where = GroupView(env, m.groups), int(child.generate_state(1)[0]), f"algo.members.{name}"
            if m.algorithm is not None:
                spec = algo_spec(m.algorithm)
                if reason := unsupported_reason(spec, view):
                    raise ConfigError(f"{where}: {m.algorithm} cannot play {list(view.groups)}: {reason}")
                policy = spec.load()[0](view, m.config, seed=member_seed)
            elif m.policy == "random":
                policy = RandomPolicy(PolicySpaces.from_env(view), member_seed)
            elif m.policy == "constant":
                policy = ConstantPolicy(PolicySpaces.from_env(view), m.action, where)
            else:
                assert m.frozen is not None, "a member is one of algorithm, policy and frozen (checked on its config)"
                policy = FrozenPolicy.from_run(
                    PolicySpaces.from_env(view), m.frozen, m.checkpoint, m.explore, where, member_seed
                )
            self.members[name] = Member(
                name,
                view,
                policy,
                m.algorithm is not None,
                m.config.rollout_steps if m.algorithm is not None else steps,
            )
        self._parts = [(m.view.groups, m.policy) for m in self.members.values()]
        self.spaces = PolicySpaces.from_env(env)
        learners = [m.policy.capabilities for m in self.members.values() if m.learns]
        # Rollouts if any member learns on-policy; the state if any member reads it; loss terms go to a member's
        # own learner (``members[name].policy.add_loss_term``), not to the team.
        self.capabilities = Capabilities(
            "rollout" if any(c.batch_kind == "rollout" for c in learners) else "transitions",
            uses_state=any(m.policy.uses_state for m in self.members.values()),
        )
        self.extras_spec = {g: spec for m in self.members.values() for g, spec in m.policy.extras_spec.items()}

    def act(
        self, obs: dict[str, np.ndarray], state: np.ndarray | None, info: dict[str, Any], explore: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        return act_parts(self._parts, obs, state, info, explore)

    def update(self, rollout: Rollout) -> dict[str, float]:
        """Each learner on its groups' steps, in slices of its own ``rollout_steps``; metrics namespaced by member
        (``loss/critic`` of member ``predators`` is ``loss/predators/critic``) and averaged over the slices.

        Before each slice the learner is told the run's progress as if the slices had been collected one after the
        other: the env-steps before this rollout plus those up to the end of the slice."""
        T, E = next(iter(rollout.obs.values())).shape[:2]
        before, total = self.progress.trained_steps, self.progress.total_steps
        metrics: dict[str, float] = {}
        for m in self.members.values():
            if not m.learns:
                continue
            seen: dict[str, list[float]] = {}
            for start in range(0, T, m.rollout_steps):
                stop = min(start + m.rollout_steps, T)
                part = split_rollout(rollout, m.view.groups, m.policy.uses_state, slice(start, stop))
                m.policy.set_progress(Progress(before + stop * E, total, (stop - start) * E))
                for k, v in m.policy.update(part).items():
                    seen.setdefault(k, []).append(v)
            for k, v in seen.items():
                space, _, rest = k.rpartition("/")
                metrics[f"{space or 'loss'}/{m.name}/{rest}"] = float(np.mean(v))
        return metrics

    def set_progress(self, progress: Progress) -> None:
        """Every learning member is told the run's progress too (what it explores with until the next update)."""
        super().set_progress(progress)
        for m in self.members.values():
            if m.learns:
                m.policy.set_progress(progress)

    def policy(self, seed: int | None = None) -> TeamsPolicy:
        """Every member's snapshot (member seeds drawn from ``seed``, as the members' own were)."""
        seeds = member_seeds(seed, len(self.members))
        return TeamsPolicy(
            self.spaces,
            {name: (m.view.groups, m.policy.policy(s)) for (name, m), s in zip(self.members.items(), seeds)},
        )

    def state(self) -> dict[str, Any]:
        return {"members": {name: m.policy.state() for name, m in self.members.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        saved = state["members"]
        if set(saved) != set(self.members):
            raise ValueError(
                f"the checkpoint holds the members {sorted(saved)}, this config has {sorted(self.members)}"
            )
        for name, m in self.members.items():
            m.policy.load_state(saved[name])

    def eval_extras(self, report: dict[str, Any]) -> dict[str, Any]:
        """``teams``: each member's groups, who plays them and its return (``team_returns``)."""
        return {"teams": self.team_returns(report)}

    def team_returns(self, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per member of an evaluation report (``eval.json``): its groups, who plays them and its mean per-agent
        return over its groups."""
        out = {}
        for name, cfg in self.config.members.items():
            agents = [a for g in self.members[name].view.groups for a in self.members[name].view.groups[g]]
            kind = cfg.algorithm or (f"frozen {cfg.frozen}" if cfg.frozen else cfg.policy)
            out[name] = {
                "groups": list(self.members[name].view.groups),
                "plays": kind,
                "return": float(np.mean([report["per_agent_return"][a]["mean"] for a in agents])),
            }
        return out


def example_config(env: Any) -> dict[str, Any]:
    """A teams config that trains on ``env`` (for the registry-driven tests): MAPPO plays the first group, every
    other group plays at random; on tag-v0, MAPPO predators against a random prey."""
    first, *rest = env.groups
    members: dict[str, Any] = {"learner": {"groups": [first], "algorithm": "mappo"}}
    if rest:
        members["others"] = {"groups": rest, "policy": "random"}
    return {"members": members}
