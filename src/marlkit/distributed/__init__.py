"""Scale-out on Ray: rollout workers (plain classes, wrapped as Ray actors) as a ``BatchSource`` of any learner.

``RolloutWorker`` (``worker.py``) is batched envs and a weights-only policy in one process, tested without Ray;
``RaySource`` (``ray_source.py``) runs N of them as Ray actors, synchronously for on-policy learners and
asynchronously for off-policy ones; ``parameter_server.py`` / ``ps_source.py`` is the gradient mode (workers send
gradients to a parameter-server actor); ``ddp.py`` averages the gradients of several learner processes over a
``torch.distributed`` gloo group, and ``learner_group.py`` runs the driver's learner with Ray replicas that way
(``experiment.learners``). Ray itself is imported only when a ``RaySource`` starts (``marlkit[ray]``).
See docs/distributed.md.
"""

from marlkit.distributed.learner_group import LearnerGroup, LearnerLost, split_rollout
from marlkit.distributed.parameter_server import GradientLearner, GradientWorker, ParameterServer
from marlkit.distributed.ps_source import ParameterServerLost, ParameterServerSource
from marlkit.distributed.ray_source import MAX_RESTARTS, RaySource, init_ray, split_envs
from marlkit.distributed.worker import RolloutWorker, merge_rollouts, merge_stats, worker_seed

__all__ = [
    "MAX_RESTARTS",
    "GradientLearner",
    "GradientWorker",
    "LearnerGroup",
    "LearnerLost",
    "ParameterServer",
    "ParameterServerLost",
    "ParameterServerSource",
    "RaySource",
    "RolloutWorker",
    "init_ray",
    "merge_rollouts",
    "merge_stats",
    "split_envs",
    "split_rollout",
    "worker_seed",
]
