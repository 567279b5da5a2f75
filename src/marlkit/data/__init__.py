"""Named batch types and the buffers that fill them."""

from marlkit.data.rollout import EpisodeStats, Rollout, RolloutBuffer

__all__ = ["EpisodeStats", "Rollout", "RolloutBuffer"]
