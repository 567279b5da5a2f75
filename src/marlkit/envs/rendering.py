"""Small NumPy rasteriser for env frames, and the GIF helper.

No window system and no pygame: frames are ``(H, W, 3)`` uint8 arrays drawn with array masks, so rendering works
headless (CI, clusters) and every env family draws the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from marlkit.envs.base import Info, MultiAgentEnv, Obs


def blank(height: int, width: int, color: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """A canvas filled with one color."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = np.asarray(color, dtype=np.uint8)
    return frame


def draw_circles(
    frame: np.ndarray,
    centers: np.ndarray,
    radii: np.ndarray | float,
    colors: np.ndarray | Sequence[int],
    outline: Sequence[int] | None = (0, 0, 0),
) -> np.ndarray:
    """Draw filled circles (pixel coordinates, x right and y down), later circles on top; returns ``frame``."""
    h, w, _ = frame.shape
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(centers),))
    colors = np.broadcast_to(np.asarray(colors, dtype=np.uint8), (len(centers), 3))
    ys, xs = np.mgrid[0:h, 0:w]
    for (cx, cy), r, c in zip(centers, radii, colors):  # a handful of entities per frame
        d2 = (xs - cx) ** 2 + (ys - cy) ** 2
        frame[d2 <= r * r] = c
        if outline is not None and r > 2:
            ring = (d2 <= r * r) & (d2 >= (r - 1.5) ** 2)
            frame[ring] = outline
    return frame


def draw_rect(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Sequence[int]) -> np.ndarray:
    """Fill the pixel rectangle ``[x0, x1) x [y0, y1)`` (clipped to the frame); returns ``frame``."""
    h, w, _ = frame.shape
    frame[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)] = np.asarray(color, dtype=np.uint8)
    return frame


def world_to_pixels(points: np.ndarray, extent: float, size: int) -> np.ndarray:
    """Map world coordinates in ``[-extent, extent]^2`` (y up) to pixel coordinates of a ``size``-pixel square."""
    points = np.asarray(points, dtype=np.float64)
    scale = size / (2.0 * extent)
    px = (points[..., 0] + extent) * scale
    py = (extent - points[..., 1]) * scale
    return np.stack([px, py], axis=-1)


def save_gif(frames: Iterable[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write RGB frames to an animated GIF (looping) and return its path."""
    import imageio.v2 as imageio  # imageio pulls pillow; keep it off the import path of marlkit

    images: list[npt.ArrayLike] = [np.asarray(f, dtype=np.uint8) for f in frames]
    if not images:
        raise ValueError("save_gif needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, images, duration=1000.0 / fps, loop=0)
    return path


def record_episode(
    env: MultiAgentEnv,
    policy: Callable[[Obs, Info], dict[str, Any]] | None = None,
    steps: int | None = None,
    index: int = 0,
    seed: int | None = None,
) -> list[np.ndarray]:
    """Frames of copy ``index`` for one episode (or ``steps`` steps) under ``policy(obs, info) -> actions``.

    Without a policy, actions are sampled uniformly from the action spaces (respecting action masks).
    """
    from marlkit.envs.spaces import sample_actions

    obs, info = env.reset(seed=seed)
    frames = [env.render(index)]
    limit = steps if steps is not None else (env.max_steps or 100)
    for _ in range(limit):
        actions = policy(obs, info) if policy is not None else sample_actions(env, info.get("action_mask"))
        obs, _, _, _, info = env.step(actions)
        if steps is None and info["episode_done"][index]:
            break
        frames.append(env.render(index))
    return frames
