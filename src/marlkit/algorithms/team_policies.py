"""The policies of ``marlkit.algorithms.teams``: the fixed members' policies and the teams' snapshot.

A fixed member plays its groups with ``RandomPolicy`` (uniform over the allowed actions), ``ConstantPolicy`` (one
action always) or ``FrozenPolicy`` (the weights-only policy of a trained run, never updated). ``TeamsPolicy`` is a
``teams`` learner's ``policy()``: every member's own snapshot acting for its groups. Each is a registered
weights-only policy kind, so a checkpoint's policy rebuilds without the learner (``marlkit.core.policies``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Box, Discrete

from marlkit.core import Policy, PolicyBase, PolicySpaces, register_policy_kind, rundir
from marlkit.core.config import ConfigError
from marlkit.core.contracts import Actions, Extras, Info, Obs
from marlkit.core.policies import policy_from_state
from marlkit.envs.spaces import sample_actions

#: ``info`` entries keyed by group (see ``marlkit.envs.base``); a member gets them restricted to its groups.
GROUP_INFO = ("final_obs", "episode_return", "action_mask", "active")


def split_info(info: dict[str, Any], groups: dict[str, Any]) -> dict[str, Any]:
    """``info`` with its per-group entries restricted to ``groups`` (per-copy entries stay as they are)."""
    return {k: ({g: v[g] for g in groups if g in v} if k in GROUP_INFO else v) for k, v in info.items()}


# ---------------------------------------------------------------------------------------------- fixed policies
class _Copies:
    """What ``sample_actions`` reads of an env: the groups, their action spaces and the number of copies."""

    def __init__(self, spaces: PolicySpaces, num_envs: int) -> None:
        self.groups, self.num_envs, self.group_action_space = spaces.groups, num_envs, spaces.group_action_space


@register_policy_kind("random")
class RandomPolicy(PolicyBase):
    """Uniformly random actions among the allowed ones (action masks honoured), from its own generator.

    Evaluation (``explore=False``) draws from a second generator, reseeded whenever the env was just reset (an
    ``info`` without ``episode_done``): every evaluation from the same reset seed then meets the same random moves,
    so evaluations differ only by the learning members, as the runner intends."""

    def __init__(self, spaces: PolicySpaces, seed: int) -> None:
        self.spaces, self.seed, self.rng = spaces, int(seed), np.random.default_rng(seed)
        self.eval_rng = np.random.default_rng([seed, 1])
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}

    def act(
        self, obs: dict[str, np.ndarray], state: Any = None, info: dict[str, Any] | None = None, explore: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        info = info or {}
        if not explore and "episode_done" not in info:
            self.eval_rng = np.random.default_rng([self.seed, 1])
        copies = next(iter(obs.values())).shape[0]  # the evaluation env may have other copies than the training one
        return sample_actions(
            _Copies(self.spaces, copies), info.get("action_mask"), self.rng if explore else self.eval_rng
        ), {}

    def policy(self, seed: int | None = None) -> RandomPolicy:
        return RandomPolicy(self.spaces, self.seed if seed is None else seed)

    def policy_state(self) -> dict[str, Any]:
        return {**self.header(), "seed": self.seed}

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> RandomPolicy:
        return cls(PolicySpaces.from_data(state["spaces"]), state["seed"] if seed is None else seed)

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


@register_policy_kind("constant")
class ConstantPolicy(PolicyBase):
    """The same action for every agent at every step (the no-op of a particle env is ``0``, or zeros for Box)."""

    def __init__(self, spaces: PolicySpaces, action: Any, where: str = "policy") -> None:
        self.spaces = spaces
        self.given = np.asarray(action).tolist()  # as configured, for policy_state
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}
        self.action: dict[str, np.ndarray] = {}  # one agent's action per group
        for g in spaces.groups:
            space = spaces.action[g]
            value, ok = None, False
            if isinstance(space, Discrete):
                ok = (
                    isinstance(action, (int, np.integer))
                    and not isinstance(action, bool)
                    and space.start <= action < space.start + space.n
                )
                value = np.int64(action) if ok else None
                allowed = f"an integer in {space.start}..{space.start + space.n - 1} (Discrete({space.n}))"
            elif isinstance(space, Box):
                try:
                    value = np.broadcast_to(np.asarray(action, dtype=space.dtype), space.shape)
                    ok = bool(np.all((value >= space.low) & (value <= space.high)))
                except (TypeError, ValueError):
                    pass
                allowed = f"a number or list of shape {space.shape} within [{space.low}, {space.high}]"
            else:
                allowed = "a Discrete or Box action space"
            if not ok or value is None:
                raise ConfigError(f"{where}.action = {action!r} is not an action of group {g!r}: allowed is {allowed}")
            self.action[g] = value

    def act(
        self, obs: dict[str, np.ndarray], state: Any = None, info: dict[str, Any] | None = None, explore: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        masks = (info or {}).get("action_mask") or {}
        actions = {}
        for g, ids in self.spaces.groups.items():
            a = actions[g] = np.broadcast_to(self.action[g], (obs[g].shape[0], len(ids), *np.shape(self.action[g])))
            if g in masks:
                space = self.spaces.action[g]
                assert isinstance(space, Discrete), "action masks go with Discrete actions"
                allowed = masks[g][..., int(a.flat[0]) - space.start]
                if not allowed.all():
                    e, i = (int(x) for x in np.argwhere(~allowed)[0])
                    raise ValueError(
                        f"the constant action {a.flat[0]} of group {g!r} is masked out for agent "
                        f"{ids[i]!r} (copy {e}); use policy: random, which honours masks"
                    )
        return {g: a.copy() for g, a in actions.items()}, {}

    def policy(self, seed: int | None = None) -> ConstantPolicy:
        return ConstantPolicy.from_state(self.policy_state())

    def policy_state(self) -> dict[str, Any]:
        return {**self.header(), "action": self.given}

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> ConstantPolicy:
        return cls(PolicySpaces.from_data(state["spaces"]), state["action"])

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


@register_policy_kind("frozen")
class FrozenPolicy(PolicyBase):
    """The trained policy of a run directory, acting for its groups and never updated (greedily unless
    ``explore``, whatever the caller asks).

    The run may have trained exactly these groups (any algorithm), or been a ``teams`` run some of whose members
    together played exactly these groups (then those members act). Spaces must match this env's. Only the
    weights-only policy of the checkpoint is read (``marlkit.core.rundir``, ``torch.load(weights_only=True)``):
    no code runs, and no learner is rebuilt.
    """

    def __init__(
        self,
        spaces: PolicySpaces,
        parts: list[tuple[dict[str, Any], Policy]],
        explore: bool,
        checkpoint: str,
        env_steps: int,
        run_dir: str | None = None,
        where: str = "frozen",
    ) -> None:
        self.spaces, self.parts, self.explore = spaces, parts, bool(explore)
        self.checkpoint, self.env_steps, self.run_dir, self.where = checkpoint, int(env_steps), run_dir, where
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}
        self.uses_state = any(p.uses_state for _, p in parts)

    @classmethod
    def from_run(
        cls,
        spaces: PolicySpaces,
        run_dir: str,
        checkpoint: str | None,
        explore: bool,
        where: str,
        seed: int | None = None,
    ) -> FrozenPolicy:
        """The policy of run ``run_dir`` (its newest intact checkpoint, or ``checkpoint``) for ``spaces``' groups."""
        try:
            path, state = rundir.find_checkpoint(run_dir, checkpoint)
        except FileNotFoundError as e:
            raise ConfigError(f"{where}.frozen: {e}") from None
        found = rundir.policy_of(state, seed)
        if found is None:
            raise ConfigError(
                f"{where}.frozen: checkpoint {path} holds no weights-only policy (it was written before "
                f"checkpoints held one), and a frozen member reads nothing else; resume that run past "
                f"its {int(state['env_steps']):,} env-steps (marlkit train --resume {run_dir} --steps N) "
                f"so that its newest checkpoint holds one"
            )
        policy, env_steps = found
        wanted = set(spaces.groups)
        if isinstance(policy, TeamsPolicy):
            parts = [(groups, p) for groups, p in policy.members.values() if set(groups) <= wanted]
            if {g for groups, _ in parts for g in groups} != wanted:
                raise ConfigError(
                    f"{where}: no members of the teams run {run_dir} play exactly the groups "
                    f"{sorted(wanted)} (its members: "
                    f"{ {n: list(groups) for n, (groups, _) in policy.members.items()} })"
                )
        elif set(policy.spaces.groups) == wanted:
            parts = [(dict(policy.spaces.groups), policy)]
        else:
            raise ConfigError(
                f"{where}: run {run_dir} trained the groups {list(policy.spaces.groups)}, this member "
                f"plays {sorted(wanted)}; a frozen run must have played exactly its member's groups"
            )
        theirs_spaces = policy.spaces
        for g in spaces.groups:
            theirs = (theirs_spaces.observation[g], theirs_spaces.action[g], len(theirs_spaces.groups[g]))
            ours = (spaces.observation[g], spaces.action[g], len(spaces.groups[g]))
            if theirs != ours:
                raise ConfigError(
                    f"{where}: group {g!r} of run {run_dir} had (observation space, action space, "
                    f"agents) {theirs}, here {ours}"
                )
        frozen = cls(spaces, parts, explore, str(path), env_steps, str(run_dir), where)
        if frozen.uses_state and theirs_spaces.state != spaces.state:
            raise ConfigError(f"{where}: run {run_dir} used a global state {theirs_spaces.state}, here {spaces.state}")
        return frozen

    def act(
        self, obs: dict[str, np.ndarray], state: Any = None, info: dict[str, Any] | None = None, explore: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        return act_parts(self.parts, obs, state, info or {}, self.explore)[0], {}

    def policy(self, seed: int | None = None) -> FrozenPolicy:
        return FrozenPolicy.from_state(self.policy_state(), seed)

    def policy_state(self) -> dict[str, Any]:
        return {
            **self.header(),
            "explore": self.explore,
            "checkpoint": self.checkpoint,
            "env_steps": self.env_steps,
            "parts": [{"groups": list(groups), "policy": p.policy_state()} for groups, p in self.parts],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> FrozenPolicy:
        spaces = PolicySpaces.from_data(state["spaces"])
        seeds = member_seeds(seed, len(state["parts"]))
        parts = [
            ({g: spaces.groups[g] for g in part["groups"]}, policy_from_state(part["policy"], s))
            for part, s in zip(state["parts"], seeds)
        ]
        return cls(spaces, parts, state["explore"], state["checkpoint"], state["env_steps"])

    def state(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "env_steps": self.env_steps}

    def load_state(self, state: dict[str, Any]) -> None:
        if state["checkpoint"] != self.checkpoint:  # the frozen run went on training since: use what was used
            again = FrozenPolicy.from_run(
                self.spaces, self.run_dir or "", state["checkpoint"], self.explore, self.where
            )
            self.parts, self.checkpoint, self.env_steps = again.parts, again.checkpoint, again.env_steps


def act_parts(
    parts: list[tuple[dict[str, Any], Any]],
    obs: dict[str, np.ndarray],
    state: np.ndarray | None,
    info: dict[str, Any],
    explore: bool,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Each policy acts on its groups' observations and info (and the state if it uses it); actions merged."""
    actions, extras = {}, {}
    for groups, policy in parts:
        a, e = policy.act(
            {g: obs[g] for g in groups}, state if policy.uses_state else None, split_info(info, groups), explore
        )
        actions.update(a)
        extras.update(e)
    return actions, extras


def member_seeds(seed: int | None, n: int) -> list[int | None]:
    """Independent seeds for ``n`` members from ``seed`` (``None`` for each when ``seed`` is)."""
    if seed is None:
        return [None] * n
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(n)]


@register_policy_kind("teams")
class TeamsPolicy(PolicyBase):
    """Every member's policy acting for its groups (a ``teams`` learner's snapshot)."""

    def __init__(self, spaces: PolicySpaces, members: dict[str, tuple[dict[str, Any], Policy]]) -> None:
        self.spaces, self.members = spaces, members
        self.extras_spec = {g: spec for _, p in members.values() for g, spec in p.extras_spec.items()}
        self.uses_state = any(p.uses_state for _, p in members.values())

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: Info | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        return act_parts(list(self.members.values()), obs, state, info or {}, explore)

    def policy_state(self) -> dict[str, Any]:
        return {
            **self.header(),
            "members": {
                name: {"groups": list(groups), "policy": p.policy_state()} for name, (groups, p) in self.members.items()
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> TeamsPolicy:
        spaces = PolicySpaces.from_data(state["spaces"])
        seeds = member_seeds(seed, len(state["members"]))
        members = {
            name: ({g: spaces.groups[g] for g in m["groups"]}, policy_from_state(m["policy"], s))
            for (name, m), s in zip(state["members"].items(), seeds)
        }
        return cls(spaces, members)
