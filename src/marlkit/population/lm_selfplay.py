"""Self-play of language agents on two-player text games: one model plays both seats and learns from both.

``SelfPlay`` trains a ``TokenRL`` whose learning agents are every seat of the game, with shared weights: each seat
reads its own observation (the prompt names its role, e.g. ``tictactoe_prompt``'s "You play O"), and the turns of
both seats go into the same update. Three pieces on top of ``TokenRL``:

**Role-conditioned advantages** (SPIRAL's RAE: Liu et al. 2025, "SPIRAL: Self-Play on Zero-Sum Games Incentivizes
Reasoning via Multi-Agent Multi-Turn Reinforcement Learning", arXiv:2506.24119). In a zero-sum game the two seats'
expected returns differ (X wins more often than O in tic-tac-toe), so one baseline for both would credit every O
move with the seat's disadvantage. Each (game, role) keeps an exponential moving average of its returns, and a
turn's advantage is its return minus its role's average taken *before* the batch. ``TokenRL``'s
``baseline="running"`` keeps exactly one such average per agent; a ``SelfPlay`` trains one game, so per agent is
per game and role. ``SelfPlay`` requires it.

**A pool of past snapshots as opponents.** Every ``snapshot_every`` updates the learner's weights are frozen into a
``marlkit.population.pool.PolicyPool`` snapshot (weights-only: the LoRA adapters alone when the model carries them,
``marlkit.llm.lora``). With ``pool_fraction > 0`` that share of each batch's games puts a snapshot in one seat
(seats alternating), drawn by the pool's ``latest`` / ``uniform`` / ``pfsp`` sampling from the learner's win rate
against each; only the learner's seat is trained in those games. A snapshot plays with the learner's own model, its
weights swapped in for its turns (adapters are a few hundred kB, so the swap is cheap).

**Weights-only run state.** ``save``/``load`` write the trainer state with the model's trainable weights only (the
adapters, for a LoRA model) and read it back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marlkit.core import checkpoint
from marlkit.envs.text.base import TextEnv
from marlkit.llm.selfplay import Frozen, LMMovePolicy, legal_moves_in, set_trainable_weights, trainable_weights
from marlkit.llm.token_rl import Actions, Batch, Prompt, TokenRL, TokenRLConfig, observation_prompt
from marlkit.population.pool import SAMPLING, PolicyPool, Snapshot, sample_opponents


@dataclass(frozen=True)
class SelfPlaySettings:
    """How ``SelfPlay`` uses its pool of past snapshots; validated at construction."""

    pool_fraction: float = 0.0
    """Share of each batch's games played against a past snapshot in one seat (0: pure self-play)."""
    snapshot_every: int = 5
    """Updates between snapshots of the learner (the first is taken before training)."""
    sampling: str = "uniform"
    """How a snapshot is drawn: ``latest``, ``uniform`` (fictitious self-play) or ``pfsp``."""

    def __post_init__(self) -> None:
        if not 0 <= self.pool_fraction <= 1:
            raise ValueError(f"pool_fraction must be in [0, 1], got {self.pool_fraction!r}")
        if not isinstance(self.snapshot_every, int) or self.snapshot_every < 1:
            raise ValueError(f"snapshot_every must be a positive integer, got {self.snapshot_every!r}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {self.sampling!r}")


def merge_batches(batches: Sequence[Batch]) -> Batch:
    """One batch holding the turns, episodes and outcomes of several."""
    out = Batch({}, {}, [])
    for b in batches:
        for g, turns in b.turns.items():
            out.turns.setdefault(g, []).extend(turns)
        for g, episodes in b.episodes.items():
            out.episodes.setdefault(g, []).extend(episodes)
        out.outcomes.extend(b.outcomes)
    return out


class SelfPlay:
    """Self-play training of one model on a two-player text game (see the module docstring).

    ``legal(observation)`` lists the moves a snapshot may answer (``legal_moves_in`` reads tic-tac-toe's "Legal
    moves:" line); ``pool_dir`` keeps the snapshots on disk (None: in memory)."""

    def __init__(
        self,
        make_env: Callable[[], TextEnv],
        model: Any,
        tokenizer: Any,
        config: TokenRLConfig,
        settings: SelfPlaySettings | None = None,
        *,
        actions: Actions | None = None,
        prompt: Prompt = observation_prompt,
        legal: Callable[[str], Sequence[str]] = legal_moves_in,
        pool_dir: str | Path | None = None,
    ) -> None:
        if not config.shared_weights:
            raise ValueError("self-play trains one model in every seat: config.shared_weights must be True")
        if config.baseline != "running":
            raise ValueError(
                f"self-play uses role-conditioned advantages (a running baseline per role): config.baseline must "
                f"be 'running', got {config.baseline!r}"
            )
        self.settings = settings or SelfPlaySettings()
        self.trainer = TokenRL(make_env, model, tokenizer, config, actions=actions, prompt=prompt)
        if len(self.trainer.learners) != 2:
            raise ValueError(f"self-play needs a two-player game, got agents {list(self.trainer.agents)}")
        self.model, self.tokenizer, self.prompt, self.legal = model, tokenizer, prompt, legal
        self.pool = PolicyPool(pool_dir)
        self.record: list[list[int]] = []  # per snapshot: [learner wins, games]
        self.rng = np.random.default_rng(config.seed)
        self.env_steps = 0
        self._snapshot()

    @property
    def updates_done(self) -> int:
        return self.trainer.updates_done

    def _snapshot(self) -> None:
        self.pool.add(Frozen(self.model), self.trainer.updates_done, self.env_steps)
        self.record.append([0, 0])

    def win_rates(self) -> list[float]:
        """The learner's win rate against each snapshot in its pool games so far (0.5 before any game)."""
        return [w / n if n else 0.5 for w, n in self.record]

    def step(self) -> dict[str, float]:
        """Play one batch (self-play games, and pool games when ``pool_fraction > 0``) and update once."""
        cfg, tr = self.trainer.config, self.trainer
        seed = int(np.random.SeedSequence([cfg.seed, tr.updates_done]).generate_state(1)[0])
        n_pool = round(self.settings.pool_fraction * cfg.episodes_per_update)
        batches, pool_games = [], 0
        if cfg.episodes_per_update - n_pool > 0:
            batches.append(tr.play(cfg.episodes_per_update - n_pool, seed))
        seats = tr.learners
        for k in range(n_pool and 2):
            games = n_pool // 2 + (k < n_pool % 2)
            if games == 0:
                continue
            i = sample_opponents(self.rng, 1, self.settings.sampling, self.win_rates())[0]
            seat, learner = seats[k], seats[1 - k]
            opponent = LMMovePolicy(
                self.model,
                self.tokenizer,
                self.prompt,
                seed=seed + k,
                legal=self.legal,
                agent=seat,
                weights=self.pool[i].policy["weights"],
            )
            b = tr.play(games, seed + 1 + k, fixed={seat: opponent})
            self.record[i][0] += sum(o.winner == learner for o in b.outcomes)
            self.record[i][1] += len(b.outcomes)
            pool_games += len(b.outcomes)
            batches.append(b)
        batch = merge_batches(batches)
        metrics = tr.update(batch)
        self.env_steps += sum(len(t) for t in batch.turns.values())
        metrics["charts/games"] = float(len(batch.outcomes))
        metrics["charts/pool_games"] = float(pool_games)
        metrics["charts/pool_size"] = float(len(self.pool))
        if tr.updates_done % self.settings.snapshot_every == 0:
            self._snapshot()
        return metrics

    def train(self, updates: int) -> list[dict[str, float]]:
        """Update until ``updates`` have been done in total."""
        history = []
        while self.trainer.updates_done < updates:
            history.append(self.step())
        return history

    # --------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The trainer state with the model's trainable weights only (plain data: ``weights_only`` loads it)."""
        state = self.trainer.state_dict()
        for group in state["groups"].values():
            group["model"] = trainable_weights(self.model)
        return {
            "format": checkpoint.FORMAT,
            "kind": "llm_selfplay",
            "trainer": state,
            "record": [list(r) for r in self.record],
            "pool": [s.policy for s in self.pool.snapshots],
            "pool_meta": [(s.updates, s.env_steps) for s in self.pool.snapshots],
            "env_steps": self.env_steps,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("kind") != "llm_selfplay":
            raise ValueError(f"not a self-play checkpoint (kind {state.get('kind')!r})")
        trainer = dict(state["trainer"])
        weights = {name: g["model"] for name, g in trainer["groups"].items()}
        set_trainable_weights(self.model, weights["shared"])
        trainer["groups"] = {name: {**g, "model": self.model.state_dict()} for name, g in trainer["groups"].items()}
        self.trainer.load_state_dict(trainer)
        self.pool = PolicyPool(self.pool.folder)
        self.record = []
        for policy, (updates, steps) in zip(state["pool"], state["pool_meta"]):
            self.pool.snapshots.append(_snapshot_of(policy, int(updates), int(steps)))
            self.record.append([0, 0])
        for r, saved in zip(self.record, state["record"]):
            r[:] = [int(x) for x in saved]
        self.env_steps = int(state["env_steps"])
        self.rng.bit_generator.state = state["rng"]

    def save(self, path: str | Path) -> Path:
        """Write the run state atomically (the adapters alone for a LoRA model)."""
        return checkpoint.save_atomic(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore a state written by ``save`` (read with ``weights_only=True``)."""
        self.load_state_dict(checkpoint.load(path))


def _snapshot_of(policy: Mapping[str, Any], updates: int, env_steps: int) -> Snapshot:
    return Snapshot(f"main@{updates}", "main", updates, env_steps, dict(policy))


__all__ = ["SelfPlay", "SelfPlaySettings", "merge_batches"]
