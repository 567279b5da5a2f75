"""A policy pool of frozen weights-only snapshots, and how opponents are drawn from it.

A snapshot is a learner's ``policy().policy_state()`` taken every N updates: plain data, written with the
checkpoint machinery's atomic writes and manifests (``marlkit.core.checkpoint.save_atomic``) as one file per
snapshot in the pool folder (``snapshot_<updates>.pt``), and read back with ``torch.load(weights_only=True)``. A
snapshot rebuilds as a policy with ``marlkit.core.policy_from_state``: no learner, optimiser or replay, no code run.

Opponent sampling (``opponent_weights``) over the snapshots, given the current player's win rate against each:

* ``latest`` — the newest snapshot only: plain self-play.
* ``uniform`` — every snapshot alike: fictitious self-play (the learner best-responds to the average of its past).
* ``pfsp`` — prioritised fictitious self-play (Vinyals et al., 2019, "Grandmaster level in StarCraft II using
  multi-agent reinforcement learning", Nature 575, Methods: "Prioritized fictitious self-play"): snapshot ``i`` is
  drawn with probability proportional to ``f(p_i)``, ``p_i`` the probability that the learner beats it, with the
  weightings ``hard`` ``(1 - p)^2`` (focus on the opponents it loses to), ``variance`` ``p (1 - p)`` (opponents of
  its own level), ``linear`` ``1 - p``. When every weight is zero (all won, or all ``p`` in {0, 1} under
  ``variance``) the draw falls back to uniform.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marlkit.core import checkpoint as ckpt
from marlkit.core.errors import CheckpointError, did_you_mean

#: How opponents are drawn from the pool (see the module docstring).
SAMPLING = ("latest", "uniform", "pfsp")
#: PFSP weightings ``f(p)`` of the win probability ``p`` of the learner against a snapshot.
WEIGHTINGS = ("hard", "variance", "linear")
SNAPSHOT_KIND = "pool_snapshot"
_NAME = re.compile(r"^snapshot_(\d+)\.pt$")


def pfsp_weight(p: np.ndarray, weighting: str = "hard") -> np.ndarray:
    """AlphaStar's PFSP weighting ``f(p)`` of win probabilities ``p`` (unnormalised)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if weighting == "hard":
        return (1.0 - p) ** 2
    if weighting == "variance":
        return p * (1.0 - p)
    if weighting == "linear":
        return 1.0 - p
    raise ValueError(
        f"PFSP weighting {weighting!r} is not allowed{did_you_mean(weighting, WEIGHTINGS)}: one of {WEIGHTINGS}"
    )


def opponent_weights(sampling: str, win_rates: Sequence[float] | np.ndarray, weighting: str = "hard") -> np.ndarray:
    """Probabilities of drawing each of the pool's snapshots (oldest first), given the learner's win rate against
    each (``win_rates[i]``, in [0, 1]; only ``pfsp`` reads them)."""
    p = np.asarray(win_rates, dtype=np.float64)
    n = len(p)
    if n == 0:
        raise ValueError("the pool is empty: take a snapshot before drawing opponents")
    if sampling == "latest":
        w = np.zeros(n)
        w[-1] = 1.0
        return w
    if sampling == "uniform":
        return np.full(n, 1.0 / n)
    if sampling == "pfsp":
        w = pfsp_weight(p, weighting)
        total = w.sum()
        return w / total if total > 0 else np.full(n, 1.0 / n)
    raise ValueError(
        f"opponent sampling {sampling!r} is not allowed{did_you_mean(sampling, SAMPLING)}: one of {SAMPLING}"
    )


@dataclass(frozen=True)
class Snapshot:
    """One frozen member of the pool."""

    name: str
    """Its name in ratings and cross-play tables (``<agent>@<updates>``)."""
    agent: str
    """Which trained agent it is a snapshot of (``main`` in plain self-play; league roles have several)."""
    updates: int
    """Updates of that agent's learner when it was taken."""
    env_steps: int
    """The run's env-step counter when it was taken."""
    policy: dict[str, Any]
    """The weights-only ``policy_state()``."""
    path: Path | None = None
    role: str = "main"
    """The league role of its agent (``marlkit.population.league.ROLES``)."""

    def build(self, seed: int | None = None) -> Any:
        """The snapshot as a ``Policy``."""
        from marlkit.core.policies import policy_from_state

        return policy_from_state(self.policy, seed)


class PolicyPool:
    """Snapshots in a folder (one weights-only file each), oldest first.

    ``add(policy, ...)`` writes a snapshot atomically; ``PolicyPool.load(folder)`` reads every snapshot back,
    raising ``CheckpointError`` naming a file that is damaged (truncated, changed after it was written, not a
    snapshot)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.snapshots: list[Snapshot] = []

    def __len__(self) -> int:
        return len(self.snapshots)

    def __getitem__(self, i: int) -> Snapshot:
        return self.snapshots[i]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.snapshots]

    def add(self, policy: Any, updates: int, env_steps: int, agent: str = "main", role: str = "main") -> Snapshot:
        """Freeze ``policy`` (a ``Policy``: its ``policy_state()`` is stored) as a new snapshot."""
        state = policy.policy_state()
        name = f"{agent}@{updates}"
        if name in self.names:
            raise ValueError(f"the pool already holds a snapshot {name!r}")
        path = None
        if self.folder is not None:
            path = self.folder / f"snapshot_{len(self.snapshots):06d}.pt"
            data = {
                "format": ckpt.FORMAT,
                "kind": SNAPSHOT_KIND,
                "agent": agent,
                "role": role,
                "updates": int(updates),
                "env_steps": int(env_steps),
                "policy": state,
            }
            ckpt.save_atomic(data, path)
        snap = Snapshot(name, agent, int(updates), int(env_steps), state, path, role)
        self.snapshots.append(snap)
        return snap

    @classmethod
    def load(cls, folder: str | Path) -> PolicyPool:
        """Every snapshot in ``folder`` (none if it does not exist), oldest first."""
        pool = cls(folder)
        folder = Path(folder)
        ckpt.clean(folder)
        files = sorted(p for p in folder.iterdir() if _NAME.match(p.name)) if folder.is_dir() else []
        for path in files:
            data = read_snapshot(path)
            pool.snapshots.append(
                Snapshot(
                    f"{data['agent']}@{data['updates']}",
                    str(data["agent"]),
                    int(data["updates"]),
                    int(data["env_steps"]),
                    data["policy"],
                    path,
                    str(data.get("role", "main")),
                )
            )
        return pool

    def truncate(self, n: int) -> None:
        """Keep the oldest ``n`` snapshots and delete the files of the others (a resumed run drops the snapshots
        taken after the checkpoint it resumes from)."""
        for snap in self.snapshots[n:]:
            if snap.path is not None:
                snap.path.unlink(missing_ok=True)
                ckpt.manifest_path(snap.path).unlink(missing_ok=True)
        del self.snapshots[n:]


def read_snapshot(path: str | Path) -> dict[str, Any]:
    """One snapshot file as plain data; ``CheckpointError`` naming the file and why when it is not intact or not a
    pool snapshot."""
    data = ckpt.load(path)
    if data.get("kind") != SNAPSHOT_KIND or not isinstance(data.get("policy"), Mapping):
        reason = f"is not a policy-pool snapshot (a {SNAPSHOT_KIND!r} file with a weights-only policy)"
        raise CheckpointError(f"snapshot {path} {reason}", reason)
    return data


def sample_opponents(
    rng: np.random.Generator,
    k: int,
    sampling: str,
    win_rates: Sequence[float] | np.ndarray,
    weighting: str = "hard",
) -> list[int]:
    """``k`` snapshot indices drawn with replacement by ``opponent_weights``."""
    w = opponent_weights(sampling, win_rates, weighting)
    return [int(i) for i in rng.choice(len(w), size=k, p=w)]
