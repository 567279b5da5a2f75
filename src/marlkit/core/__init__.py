"""The foundation every floor above imports: the learner and batch-source contracts (``contracts.py``), policies as data and the
policy-kind registry (``policies.py``), and what every learner shares (``learners.py``). Nothing here imports an
algorithm, the runner or the networks at import time."""

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
    Learner,
    LossContext,
    LossTerm,
    Obs,
    Policy,
    Progress,
)
from marlkit.core.learners import LearnerBase
from marlkit.core.policies import (
    POLICY_FORMAT,
    PolicyBase,
    PolicySpaces,
    policy_from_state,
    policy_kinds,
    register_policy_kind,
)

__all__ = ["BATCH_KINDS", "POLICY_FORMAT", "Actions", "Actor", "BatchKind", "BatchSource", "Capabilities", "Extras",
           "ExtrasSpec", "GameLearner", "Learner", "LearnerBase", "LossContext", "LossTerm", "Obs", "Policy",
           "PolicyBase", "PolicySpaces", "Progress", "policy_from_state", "policy_kinds", "register_policy_kind"]
