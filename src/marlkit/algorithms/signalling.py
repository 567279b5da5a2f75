"""Learned communication in the referential game: a speaker and a listener trained end to end.

The speaker reads the target's one-hot attributes with an MLP whose output is the first hidden state of a GRU that
emits ``max_len`` symbols one at a time (each symbol, embedded, is the next input). The listener reads the message
with its own GRU, encodes each candidate with an MLP, and scores candidates by the dot product of the two codes.
Two ways to train the pair (``SignallingConfig.method``):

* ``"reinforce"`` — both agents make discrete choices (the speaker samples each symbol, the listener samples a
  candidate) and both follow the score-function gradient of the shared reward ``r``: ``-(r - b) log pi(choice)``
  plus an entropy bonus for each agent. The baseline ``b`` is leave-one-out: every game of a batch is played
  ``samples_per_game`` times with independently sampled messages and choices, and each play's baseline is the
  mean reward of the *other* plays of the same game (Kool et al. 2019, "Buy 4 REINFORCE Samples, Get a Baseline
  for Free!", https://openreview.net/forum?id=r1lgTGL5DE). It does not depend on the play's own choices, so the
  gradient stays unbiased; it is specific to the game (an easy target gets a high baseline), which a batch mean is
  not; and it needs no critic and no state to checkpoint. With ``samples_per_game=1`` the baseline is the mean
  reward of the other games of the batch. Williams (1992), "Simple Statistical Gradient-Following Algorithms for
  Connectionist Reinforcement Learning"; for this game Lazaridou et al. (2017), https://arxiv.org/abs/1612.07182.
* ``"gumbel"`` — each symbol is a straight-through Gumbel-softmax sample: a one-hot vector in the forward pass
  whose gradient is that of the softmax of ``(logits + Gumbel noise) / temperature``; the listener is not sampled
  but trained by cross-entropy on the target's position, and that loss is backpropagated through the message into
  the speaker. Jang et al. (2017), https://arxiv.org/abs/1611.01144; for this game Havrylov & Titov (2017),
  https://arxiv.org/abs/1705.11192.

With ``eos`` in the game, symbol 0 ends a message: REINFORCE counts log-probabilities and entropies up to and
including the first 0, and the listener reads the message up to there. Under Gumbel-softmax the end is itself a
sampled symbol, so the listener scores the candidates after every symbol and the loss weighs the score after symbol
``t`` by the probability that the message ends at ``t`` (one-hot in the forward pass, so the loss is the one at the
true end; EGG's ``RnnReceiverGS`` does the same).

Evaluation is greedy for both agents (argmax symbol, argmax candidate). Seeded: the networks are initialised from
``seed`` and every sample is drawn from one ``torch.Generator`` seeded from it, so the same seed gives the same run.
``state_dict()`` / ``load_state_dict()`` (a ``torch.nn.Module``) hold both agents; ``optimizer`` is separate.

In a run (``marlkit train signalling referential-v0``) the pair is a ``marlkit.core.GameLearner``: its source draws
each update's training games from the game's generator as ``train_step`` does (an env-step is one play of a game),
``update`` is ``train_step`` with ``loss/`` and ``train/`` metrics, evaluation is greedy play on held-out games, and
``state()`` holds both agents, the optimizer and the sampling generator. The loss passes the loss-term hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marlkit.core import Capabilities, LearnerBase, PolicySpaces
from marlkit.data.rollout import EpisodeStats
from marlkit.envs.text.referential import ReferentialBatch, ReferentialGame

if TYPE_CHECKING:
    from marlkit.core import Policy

METHODS = ("reinforce", "gumbel")


@dataclass(frozen=True)
class SignallingConfig:
    """Hyper-parameters of the speaker-listener pair; validated at construction."""

    method: str = "reinforce"
    """``"reinforce"`` (score function on both agents' choices) or ``"gumbel"`` (straight-through Gumbel-softmax)."""
    hidden: int = 128
    """Width of both agents' GRUs and MLPs."""
    embed: int = 64
    """Width of the symbol embeddings."""
    lr: float = 1e-3
    """Adam learning rate of both agents."""
    batch_size: int = 512
    """Plays per update (``batch_size // samples_per_game`` games under REINFORCE)."""
    samples_per_game: int = 4
    """REINFORCE: plays of each game per update, for the leave-one-out baseline (1: baseline over the batch). On the
    4 x 5 game (seed 0) 4 plays gave held-out 0.937 / 0.946 at 2,000 / 2,500 updates, the batch mean 0.923 / 0.933."""
    speaker_entropy: float = 0.05
    """REINFORCE: weight of the speaker's entropy bonus (mean over the symbols it sent). 0.01 let the speaker settle
    early on an ambiguous code (4 x 5 game, seed 0, batch-mean baseline: held-out 0.88 at 2,000 updates, against
    0.92 with 0.05)."""
    listener_entropy: float = 0.001
    """REINFORCE: weight of the listener's entropy bonus."""
    temperature: float = 1.0
    """Gumbel: temperature of the Gumbel-softmax relaxation."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm of each update to this (0 switches clipping off)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"SignallingConfig.method must be one of {METHODS}, got {self.method!r}")
        for name in ("hidden", "embed", "batch_size", "samples_per_game"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SignallingConfig.{name} must be a positive integer, got {value!r}")
        if self.batch_size < 2 or self.batch_size % self.samples_per_game:
            raise ValueError(
                f"SignallingConfig.batch_size must be >= 2 and a multiple of samples_per_game (the "
                f"leave-one-out baseline needs two plays); got batch_size={self.batch_size}, "
                f"samples_per_game={self.samples_per_game}"
            )
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SignallingConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("speaker_entropy", "listener_entropy", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SignallingConfig.{name} must be >= 0, got {getattr(self, name)!r}")


class Speaker(nn.Module):
    """One-hot attributes -> ``max_len`` symbols: an MLP gives the GRU's first state, each symbol feeds the next."""

    def __init__(self, in_dim: int, vocab_size: int, max_len: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.encoder = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.start = nn.Parameter(torch.zeros(embed))
        self.embedding = nn.Linear(vocab_size, embed, bias=False)  # one-hot (or relaxed) symbol -> embedding
        self.cell = nn.GRUCell(embed, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(
        self, x: torch.Tensor, mode: str, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Symbols ``(B, L)``, the symbols as one-hots ``(B, L, vocab)`` (straight-through under ``"gumbel"``) and
        the logits ``(B, L, vocab)``; ``mode`` is ``"sample"``, ``"gumbel"`` or ``"greedy"``."""
        h = torch.tanh(self.encoder(x))
        inp = self.start.expand(len(x), -1)
        symbols, one_hots, logits = [], [], []
        for _ in range(self.max_len):
            h = self.cell(inp, h)
            logit = self.head(h)
            if mode == "gumbel":
                u = torch.rand(logit.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
                soft = F.softmax((logit - torch.log(-torch.log(u))) / temperature, dim=-1)
                symbol = soft.argmax(-1)
                one_hot = F.one_hot(symbol, logit.shape[-1]).to(soft) - soft.detach() + soft
            else:
                if mode == "sample":
                    symbol = torch.multinomial(F.softmax(logit, -1), 1, generator=generator).squeeze(1)
                else:
                    symbol = logit.argmax(-1)
                one_hot = F.one_hot(symbol, logit.shape[-1]).to(logit)
            symbols.append(symbol)
            one_hots.append(one_hot)
            logits.append(logit)
            inp = self.embedding(one_hot)
        return torch.stack(symbols, 1), torch.stack(one_hots, 1), torch.stack(logits, 1)


class Listener(nn.Module):
    """A message ``(B, L, vocab)`` and candidates ``(B, K, in_dim)`` -> scores ``(B, L, K)`` after every symbol."""

    def __init__(self, in_dim: int, vocab_size: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.embedding = nn.Linear(vocab_size, embed, bias=False)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.candidates = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

    def forward(self, message: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        codes, _ = self.rnn(self.embedding(message))  # (B, L, H)
        return torch.einsum("blh,bkh->blk", codes, self.candidates(candidates))


class Signalling(LearnerBase, nn.Module):
    """A speaker and a listener for one ``ReferentialGame``, with their optimizer; ``train_step`` is one update."""

    #: On-policy: each update plays its own batch of games; one gradient loss, open to extra terms.
    capabilities = Capabilities("rollout", losses=("loss",))
    extras_spec: ClassVar[dict[str, dict[str, tuple[int, ...]]]] = {}

    def __init__(self, game: ReferentialGame, config: SignallingConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.game = game
        self.spaces = PolicySpaces.from_env(game)
        self.config = cfg = config if config is not None else SignallingConfig()
        g = game.config
        in_dim = g.n_attributes * g.n_values
        with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching global torch state
            torch.manual_seed(seed)
            self.speaker = Speaker(in_dim, g.vocab_size, g.max_len, cfg.hidden, cfg.embed)
            self.listener = Listener(in_dim, g.vocab_size, cfg.hidden, cfg.embed)
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.lr)

    # ------------------------------------------------------------------------------------------ training
    def train_step(self, batch: ReferentialBatch | None = None) -> dict[str, float]:
        """One update on ``batch`` (by default fresh training games); returns its metrics. Under REINFORCE each
        game of ``batch`` is played ``samples_per_game`` times."""
        cfg = self.config
        k = cfg.samples_per_game if cfg.method == "reinforce" else 1
        if batch is None:
            batch = self.game.sample_batch("train", self.games_per_update())
        if k > 1:
            batch = ReferentialBatch(*(np.repeat(a, k, axis=0) for a in batch))  # plays of one game side by side
        x, cands, target = self._tensors(batch)
        if cfg.method == "reinforce":
            loss, metrics = self._reinforce_loss(x, cands, target)
        else:
            loss, metrics = self._gumbel_loss(x, cands, target)
        self.optimizer.zero_grad()
        self.with_loss_terms("loss", loss, batch).backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        metrics["loss"] = loss.item()
        return metrics

    def games_per_update(self) -> int:
        """Games drawn for one update (each played ``samples_per_game`` times under REINFORCE)."""
        cfg = self.config
        return cfg.batch_size // (cfg.samples_per_game if cfg.method == "reinforce" else 1)

    # ------------------------------------------------------------------------------------ as a learner
    def update(self, batch: ReferentialBatch) -> dict[str, float]:
        """``train_step(batch)``, its metrics as ``loss/loss`` and ``train/...`` (the reward as the episode
        return: both agents get it)."""
        metrics = self.train_step(batch)
        out = {"loss/loss": metrics.pop("loss"), "train/episode_return": metrics.pop("reward")}
        out.update({f"train/{k}": v for k, v in metrics.items()})
        return out

    def source_for(self, game: ReferentialGame) -> ReferentialSource:
        """Training games drawn from ``game``'s generator, ``games_per_update()`` per batch."""
        return ReferentialSource(game, self.games_per_update(), self.config.batch_size)

    def evaluate_on(self, game: ReferentialGame, episodes: int, seed: int) -> EpisodeStats:
        """Greedy play on held-out games: every held-out object as the target, as often as ``episodes`` games
        need (distractors from a generator seeded with ``seed``); each game's reward is both agents' return."""
        repeats = -(-episodes // len(game.splits["heldout"]))
        batch = game.eval_batch("heldout", repeats=repeats, seed=seed)
        played = self.evaluate(batch)
        reward = game.reward(batch, played["choices"])[:episodes]
        lengths = game.message_lengths(played["messages"])[:episodes]
        stats = EpisodeStats()
        for r, n in zip(reward.tolist(), lengths.tolist()):
            for agent in game.groups:
                stats.returns.setdefault(agent, []).append(np.array([r]))
            stats.lengths.append(1)
            stats.metrics.setdefault("message_length", []).append(float(n))
        return stats

    def act(self, obs: Any, state: Any, info: dict[str, Any], explore: bool = True) -> Any:
        raise TypeError("signalling plays the referential game end to end: it has no array act")

    def policy(self, seed: int | None = None) -> Policy:
        raise TypeError("signalling has no weights-only array policy: both agents are in its state()")

    def state(self) -> dict[str, Any]:
        return {
            "model": self.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    # ------------------------------------------------------------------------------------------ losses
    def _reinforce_loss(self, x, cands, target) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        symbols, one_hots, logits = self.speaker(x, "sample", self.generator)
        sent = self._sent_mask(symbols)  # (B, L) symbols that count
        log_p = F.log_softmax(logits, -1)
        speaker_logp = (log_p.gather(-1, symbols.unsqueeze(-1)).squeeze(-1) * sent).sum(1)
        speaker_ent = (-(log_p.exp() * log_p).sum(-1) * sent).sum(1) / sent.sum(1)

        scores = self._scores_at_end(self.listener(one_hots, cands), sent)  # (B, K)
        listener_log_p = F.log_softmax(scores, -1)
        choice = torch.multinomial(listener_log_p.exp(), 1, generator=self.generator).squeeze(1)
        listener_logp = listener_log_p.gather(1, choice[:, None]).squeeze(1)
        listener_ent = -(listener_log_p.exp() * listener_log_p).sum(-1)

        reward = (choice == target).float()
        k = cfg.samples_per_game
        plays = reward.view(-1, k) if k > 1 else reward.view(1, -1)  # leave-one-out within a game (or batch)
        baseline = ((plays.sum(1, keepdim=True) - plays) / (plays.shape[1] - 1)).view(-1)
        advantage = reward - baseline
        policy_loss = -(advantage * (speaker_logp + listener_logp)).mean()
        entropy_loss = -(cfg.speaker_entropy * speaker_ent.mean() + cfg.listener_entropy * listener_ent.mean())
        return policy_loss + entropy_loss, {
            "reward": reward.mean().item(),
            "speaker_entropy": speaker_ent.mean().item(),
            "listener_entropy": listener_ent.mean().item(),
            "message_length": sent.sum(1).mean().item(),
        }

    def _gumbel_loss(self, x, cands, target) -> tuple[torch.Tensor, dict[str, float]]:
        symbols, one_hots, _ = self.speaker(x, "gumbel", self.generator, self.config.temperature)
        scores = self.listener(one_hots, cands)  # (B, L, K)
        per_step = F.cross_entropy(
            scores.transpose(1, 2), target[:, None].expand(-1, scores.shape[1]), reduction="none"
        )  # (B, L)
        if self.game.config.eos:
            # P(the message ends at t) = P(no 0 before t) * P(0 at t); the last symbol takes what is left.
            stop = one_hots[..., 0]
            alive = torch.cumprod(torch.cat([torch.ones_like(stop[:, :1]), 1 - stop[:, :-1]], 1), 1)
            ends = torch.cat([alive[:, :-1] * stop[:, :-1], alive[:, -1:]], 1)
            loss = (ends * per_step).sum(1).mean()
            length = (ends.detach() * torch.arange(1, scores.shape[1] + 1)).sum(1).mean()
        else:
            loss = per_step[:, -1].mean()
            length = torch.tensor(float(scores.shape[1]))
        with torch.no_grad():
            sent = self._sent_mask(symbols)
            reward = (self._scores_at_end(scores, sent).argmax(-1) == target).float()
        return loss, {"reward": reward.mean().item(), "message_length": float(length)}

    # -------------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def messages(self, objects: np.ndarray) -> np.ndarray:
        """The speaker's greedy messages ``(N, L)`` int64 for ``(N, A)`` attribute values."""
        x = torch.as_tensor(self.game.one_hot(np.asarray(objects)))
        return self.speaker(x, "greedy")[0].numpy()

    @torch.no_grad()
    def listener_probs(self, batch: ReferentialBatch, messages: np.ndarray) -> np.ndarray:
        """The listener's choice distribution ``(B, K)`` over the candidates of ``batch`` given ``messages (B, L)``
        (any messages: the speaker's, or ablated ones for positive-listening tests)."""
        symbols = torch.as_tensor(np.asarray(messages), dtype=torch.long)
        one_hots = F.one_hot(symbols, self.game.config.vocab_size).float()
        _, cands, _ = self._tensors(batch)
        scores = self._scores_at_end(self.listener(one_hots, cands), self._sent_mask(symbols))
        return F.softmax(scores, -1).numpy()

    def evaluate(self, batch: ReferentialBatch) -> dict[str, Any]:
        """Greedy play on ``batch``: accuracy, the messages sent and the choices made."""
        messages = self.messages(batch.targets)
        choices = self.listener_probs(batch, messages).argmax(-1)
        return {"accuracy": float(self.game.reward(batch, choices).mean()), "messages": messages, "choices": choices}

    # ------------------------------------------------------------------------------------------- helpers
    def _tensors(self, batch: ReferentialBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            torch.as_tensor(self.game.one_hot(batch.targets)),
            torch.as_tensor(self.game.one_hot(batch.candidates)),
            torch.as_tensor(batch.target_index),
        )

    def _sent_mask(self, symbols: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` float: 1 for the symbols that are part of the message (up to and including the first 0)."""
        if not self.game.config.eos:
            return torch.ones(symbols.shape, dtype=torch.float32)
        is_eos = (symbols == 0).float()
        before = torch.cumsum(is_eos, 1) - is_eos  # 0s strictly before position t
        return (before == 0).float()

    @staticmethod
    def _scores_at_end(scores: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """The listener's scores after the last symbol of each message: ``(B, L, K)`` -> ``(B, K)``."""
        last = sent.sum(1).long() - 1
        return scores[torch.arange(len(scores)), last]


class ReferentialSource:
    """The ``BatchSource`` of ``Signalling``: ``games`` training games per batch from ``game``'s generator (what
    ``train_step`` draws by itself), counted as ``plays`` env-steps (each game played ``plays // games`` times)."""

    def __init__(self, game: ReferentialGame, games: int, plays: int) -> None:
        self.game, self.games, self.steps_per_batch = game, games, plays

    def collect(self) -> tuple[ReferentialBatch, EpisodeStats]:
        return self.game.sample_batch("train", self.games), EpisodeStats()

    def state(self) -> dict[str, Any]:
        return {"rng": self.game.np_random.bit_generator.state}

    def load_state(self, state: dict[str, Any]) -> None:
        self.game.np_random.bit_generator.state = state["rng"]
