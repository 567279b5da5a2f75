"""Grid worlds: discrete positions on a square board, batched over copies."""

from marlkit.envs.grid.foraging import Foraging

__all__ = ["Foraging"]
