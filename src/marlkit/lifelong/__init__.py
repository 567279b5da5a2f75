"""Lifelong multi-agent learning: task sequences, a continual trainer, strategies and continual-learning metrics.

``sequences`` builds ordered lists of tasks (env configs padded to one layout, ``tasks.TaskEnv``) and
``sequence_file`` loads them from YAML files; ``trainer`` trains one learner through them with a strategy and
records the performance matrix; ``strategies`` are the continual-learning methods, added to any gradient learner
through the loss-term hook; ``distill`` lets an agent learn a task from a teammate's frozen policy; ``metrics``
computes average performance, forgetting (Continual World's and MEAL's), forward transfer and plasticity. See
docs/lifelong.md.
"""

from marlkit.lifelong.tasks import TASK_ENV_ID, register_task_env

register_task_env()

__all__ = ["TASK_ENV_ID", "register_task_env"]
