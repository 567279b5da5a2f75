"""Agents that learn from each other: peer distillation from a teammate's frozen policy, and a skill library.

``distill_from(learner, teacher, weight)`` adds to the learner's loss (the loss-term hook) the cross-entropy of its
action distribution against the teacher's greedy actions on the observations of the batch being trained on —
the student's own visits, so the teacher corrects it where it goes (as DAgger does). The teacher is any
``marlkit.core.Policy`` for the same groups and spaces (a teammate's snapshot, a policy loaded from a file): only
``teacher.act`` is called, so it needs no gradients and no access to its networks. ``weight`` may be a function of
the learner's progress (``Progress``) to hand over from teacher to reward.

``SkillLibrary`` keeps frozen policies by task name in a directory (``<name>.pt``, each ``policy.policy_state()``
saved with ``torch.save`` and loaded with ``weights_only=True``): an agent meeting a task consults it for a
teacher. ``steps_to_threshold`` reads a learning curve for the first env-step count at which a success threshold
was reached, the measure of how much a teacher saves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from marlkit.core.config import ConfigError
from marlkit.lifelong.strategies import policy_logits, torch_module

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def distill_from(learner: Any, teacher: Any, weight: float | Callable[[Any], float] = 1.0) -> Callable[[], None]:
    """Add the distillation term towards ``teacher`` to ``learner``'s losses; returns its remover."""
    torch_module(learner, "distill")
    if learner.capabilities.batch_kind != "rollout":
        raise ConfigError(
            f"peer distillation reads the observations of the rollouts a learner trains on (batch_kind 'rollout': "
            f"PPO, A2C); {type(learner).__name__} learns from {learner.capabilities.batch_kind}"
        )
    if learner.spaces.difference(teacher.spaces):
        raise ConfigError(f"the teacher cannot act for this learner: {learner.spaces.difference(teacher.spaces)}")
    # The teacher's actions on the batch being trained on, computed once per batch (its minibatches and epochs
    # share them); the batch itself is kept so that a new batch is never mistaken for it.
    cache: list[Any] = [None, {}]

    def targets(batch: Any) -> dict[str, torch.Tensor]:
        if cache[0] is not batch:
            obs = {g: o.reshape(-1, *o.shape[2:]).numpy() for g, o in batch.obs.items()}
            info = {}
            if batch.action_mask is not None:
                info["action_mask"] = {g: m.reshape(-1, *m.shape[2:]).numpy() for g, m in batch.action_mask.items()}
            actions, _ = teacher.act(obs, None, info, explore=False)
            cache[0], cache[1] = (
                batch,
                {g: torch.as_tensor(np.asarray(a), dtype=torch.long) for g, a in actions.items()},
            )
        out: dict[str, torch.Tensor] = cache[1]
        return out

    def distill_term(ctx: Any) -> torch.Tensor:
        batch = ctx.batch
        w = weight(learner.progress) if callable(weight) else weight
        if w == 0:
            return torch.zeros(())
        total = torch.zeros(())
        for g, acts in targets(batch).items():
            obs = batch.obs[g].reshape(-1, *batch.obs[g].shape[2:])
            mask = (
                None if batch.action_mask is None else batch.action_mask[g].reshape(-1, *batch.action_mask[g].shape[2:])
            )
            logits = policy_logits(learner, g, obs, mask)
            total = total + F.cross_entropy(logits.reshape(-1, logits.shape[-1]), acts.reshape(-1))
        return w * total

    remove: Callable[[], None] = learner.add_loss_term(distill_term)
    return remove


class SkillLibrary:
    """Frozen policies by task name in ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError(f"skill name {name!r} is not allowed: letters, digits, '_', '-' and '.' only")
        return self.root / f"{name}.pt"

    def add(self, name: str, policy: Any) -> Path:
        """Store ``policy`` (a ``Policy``) as the skill ``name``."""
        path = self._path(name)
        torch.save(policy.policy_state(), path)
        return path

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.pt"))

    def __contains__(self, name: str) -> bool:
        return self._path(name).is_file()

    def get(self, name: str, seed: int | None = None) -> Any:
        """The frozen policy of skill ``name``."""
        from marlkit.core import policy_from_state

        path = self._path(name)
        if not path.is_file():
            raise ConfigError(f"no skill {name!r} in {self.root} (skills: {', '.join(self.names()) or 'none'})")
        return policy_from_state(torch.load(path, weights_only=True, map_location="cpu"), seed=seed)


def steps_to_threshold(steps: Sequence[int], success: Sequence[float], threshold: float) -> int | None:
    """The first env-step count at which ``success`` reached ``threshold`` (None if never)."""
    for s, v in zip(steps, success):
        if v >= threshold:
            return int(s)
    return None
