"""The foundation every floor above imports: the learner and batch-source contracts (``contracts.py``), spaces as
plain data (``spaces.py``), policies as data and the policy-kind registry (``policies.py``), what every learner shares
(``learners.py``), config validation (``config.py``), checkpoint files (``checkpoint.py``), the run directory's
layout and its weights-only policy (``rundir.py``) and the shared error types (``errors.py``). Nothing here
imports an environment, an algorithm, the runner or the networks at import time; this package's face hands on the
contracts and policies only (the rest is imported by its module's name, ``marlkit.core.config``)."""

from marlkit.core.contracts import (
    BATCH_KINDS,
    Actions,
    Actor,
    BatchKind,
    BatchSource,
    Capabilities,
    Extras,
    ExtrasSpec,
    GameLearner,
    Info,
    Learner,
    LossContext,
    LossTerm,
    Obs,
    Policy,
    Progress,
)
from marlkit.core.learners import LearnerBase
from marlkit.core.policies import POLICY_FORMAT, PolicyBase, policy_from_state, policy_kinds, register_policy_kind
from marlkit.core.spaces import PolicySpaces

__all__ = [
    "BATCH_KINDS",
    "POLICY_FORMAT",
    "Actions",
    "Actor",
    "BatchKind",
    "BatchSource",
    "Capabilities",
    "Extras",
    "Info",
    "ExtrasSpec",
    "GameLearner",
    "Learner",
    "LearnerBase",
    "LossContext",
    "LossTerm",
    "Obs",
    "Policy",
    "PolicyBase",
    "PolicySpaces",
    "Progress",
    "policy_from_state",
    "policy_kinds",
    "register_policy_kind",
]
