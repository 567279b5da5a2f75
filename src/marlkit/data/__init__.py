"""Named batch types and the buffers that fill them."""

from marlkit.data.replay import EpisodeBatch, EpisodeReplay, GroupTransitions, TransitionBatch, TransitionReplay
from marlkit.data.rollout import LOCAL_SOURCE, EpisodeStats, Rollout, RolloutBuffer

__all__ = [
    "LOCAL_SOURCE",
    "EpisodeBatch",
    "EpisodeReplay",
    "EpisodeStats",
    "GroupTransitions",
    "Rollout",
    "RolloutBuffer",
    "TransitionBatch",
    "TransitionReplay",
]
