"""The referential (discrimination) game of emergent-communication research, batched over many games at once.

Objects have ``n_attributes`` attributes with ``n_values`` values each, so there are ``n_values ** n_attributes``
of them. In one game a **speaker** sees the target object and sends a message of at most ``max_len`` symbols from
a vocabulary of ``vocab_size``; a **listener** sees the message and ``n_candidates`` objects — the target and
``n_candidates - 1`` distinct distractors in shuffled order — and points at one. Both get reward 1 when it points
at the target, 0 otherwise. Lewis (1969), "Convention"; in this form Lazaridou et al. (2017), "Multi-Agent
Cooperation and the Emergence of (Natural) Language", https://arxiv.org/abs/1612.07182, and with attribute-value
objects Chaabouni et al. (2020), "Compositionality and Generalization in Emergent Languages",
https://arxiv.org/abs/2004.09124.

**End of message.** With ``eos=True`` symbol 0 ends a message: whatever follows the first 0 is not part of it
(``message_lengths`` says how long each message is, the 0 included). With ``eos=False`` every message has exactly
``max_len`` symbols and 0 is an ordinary symbol.

**Generalisation split.** The objects are split once, by ``split_seed``, into ``train`` and ``heldout``
(``heldout_fraction`` of them, 0.2 by default). The split is checked so that every attribute value occurs in some
training object: a held-out object is an unseen *combination* of seen values, which is what the held-out accuracy
measures. Distractors: a training game draws target **and distractors** from the training objects only, so no
held-out object is ever shown to either agent during training (not even as a distractor the listener learns to
reject). A held-out game draws its target from the held-out objects and its distractors from **all** objects: the
held-out set is small (125 of 625 objects in the 4 x 5 game), and drawing distractors from it alone would make
held-out games systematically unlike training games (distractors that are themselves unseen), so the held-out
accuracy would measure two things at once.

**Why not the ``MultiAgentEnv`` contract.** The game is a single exchange with no state, and its agents are trained
end to end: with Gumbel-softmax the message is a differentiable tensor the listener reads directly, which an env
that steps discrete action arrays cannot carry. So the game is a sampler of batches (``sample_batch``), a fixed
evaluation set (``eval_batch``) and a reward function (``reward``), all NumPy; the agents' code decides how the
message travels. It is registered as ``referential-v0``, of its own kind (``marlkit.envs.registry.env_kind``): runs
build it with ``make_referential`` and train it with learners that play it themselves (``signalling``).

Usage::

    game = ReferentialGame(ReferentialConfig(n_attributes=4, n_values=5, n_candidates=5), seed=0)
    batch = game.sample_batch("train", 512)      # batch.targets (512, 4), batch.candidates (512, 5, 4), ...
    reward = game.reward(batch, choices)         # (512,) float32, 1 where choices == batch.target_index
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import numpy as np
from gymnasium import spaces

from marlkit.core.errors import did_you_mean

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class ReferentialConfig:
    """The game's size and the split of its objects; validated at construction."""

    n_attributes: int = 4
    """Attributes per object (A)."""
    n_values: int = 5
    """Values per attribute (V); there are V ** A objects."""
    n_candidates: int = 5
    """Objects the listener chooses from (K): the target and K - 1 distinct distractors."""
    max_len: int = 4
    """Longest message in symbols (L)."""
    vocab_size: int = 10
    """Symbols a message is made of, 0 .. vocab_size - 1."""
    eos: bool = False
    """Symbol 0 ends a message (variable length up to ``max_len``); otherwise every message has ``max_len`` symbols."""
    heldout_fraction: float = 0.2
    """Share of the objects never used as targets or distractors in training."""
    split_seed: int = 0
    """Seed of the train/held-out split (independent of the seed of the games drawn)."""

    def __post_init__(self) -> None:
        for name in ("n_attributes", "n_values", "n_candidates", "max_len", "vocab_size", "split_seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"ReferentialConfig.{name} must be an int, got {value!r}")
        for name, low in (
            ("n_attributes", 1),
            ("n_values", 2),
            ("n_candidates", 2),
            ("max_len", 1),
            ("vocab_size", 2),
            ("split_seed", 0),
        ):
            if getattr(self, name) < low:
                raise ValueError(f"ReferentialConfig.{name} must be >= {low}, got {getattr(self, name)}")
        if self.eos and self.vocab_size < 3:
            raise ValueError(
                f"with eos=True symbol 0 only ends messages, so vocab_size must be >= 3 to leave two "
                f"content symbols; got vocab_size={self.vocab_size}"
            )
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"ReferentialConfig.heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        n_objects = self.n_values**self.n_attributes
        n_heldout = self.n_heldout
        if n_heldout < 1:
            raise ValueError(
                f"heldout_fraction={self.heldout_fraction} of {n_objects} objects holds none out; "
                f"raise it to at least {1 / n_objects:.3g}"
            )
        if n_objects - n_heldout < self.n_candidates:
            raise ValueError(
                f"{n_objects - n_heldout} training objects cannot fill a game of n_candidates="
                f"{self.n_candidates} distinct objects; lower heldout_fraction or n_candidates"
            )

    @property
    def n_objects(self) -> int:
        return int(self.n_values**self.n_attributes)

    @property
    def n_heldout(self) -> int:
        return int(round(self.heldout_fraction * self.n_objects))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class ReferentialBatch(NamedTuple):
    """A batch of games; every array's first axis is the game."""

    targets: np.ndarray
    """``(B, A)`` int64: the target's attribute values (what the speaker sees)."""
    target_ids: np.ndarray
    """``(B,)`` int64: the target's object id (its index in ``ReferentialGame.objects``)."""
    candidates: np.ndarray
    """``(B, K, A)`` int64: the candidates' attribute values, in the order the listener sees them."""
    candidate_ids: np.ndarray
    """``(B, K)`` int64: the candidates' object ids."""
    target_index: np.ndarray
    """``(B,)`` int64: where the target is among the candidates (the correct choice)."""


class ReferentialGame:
    """The objects, their split, and batches of games drawn from one seeded generator."""

    def __init__(self, config: ReferentialConfig | None = None, seed: int | None = None) -> None:
        self.config = cfg = config if config is not None else ReferentialConfig()
        if not isinstance(cfg, ReferentialConfig):
            raise TypeError(f"config must be a ReferentialConfig, got {type(cfg).__name__}")
        # Object id -> attribute values, in mixed radix: id = sum_i values[i] * V ** (A - 1 - i).
        ids = np.arange(cfg.n_objects)
        powers = cfg.n_values ** np.arange(cfg.n_attributes - 1, -1, -1)
        self.objects = (ids[:, None] // powers[None, :]) % cfg.n_values
        order = np.random.default_rng(cfg.split_seed).permutation(cfg.n_objects)
        self.splits = {"heldout": np.sort(order[: cfg.n_heldout]), "train": np.sort(order[cfg.n_heldout :])}
        seen = np.zeros((cfg.n_attributes, cfg.n_values), dtype=bool)
        seen[np.arange(cfg.n_attributes)[None, :], self.objects[self.splits["train"]]] = True
        if not seen.all():
            a, v = np.argwhere(~seen)[0]
            raise ValueError(
                f"split_seed={cfg.split_seed} holds out every object with attribute {a} = {v}, so "
                f"held-out objects would not be new combinations of seen values; choose another "
                f"split_seed or a smaller heldout_fraction"
            )
        self.np_random = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        """Restart the stream of games: the batches that follow are a pure function of ``seed``."""
        self.np_random = np.random.default_rng(seed)

    # -------------------------------------------------------------------------------------------- games
    def sample_batch(self, split: str, batch_size: int) -> ReferentialBatch:
        """``batch_size`` games whose targets are drawn uniformly (with replacement) from ``split``."""
        self._check_split(split)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        target_ids = self.np_random.choice(self.splits[split], size=int(batch_size))
        return self._games(split, target_ids, self.np_random)

    def eval_batch(self, split: str, repeats: int = 1, seed: int = 0) -> ReferentialBatch:
        """Every object of ``split`` as the target ``repeats`` times, with distractors drawn from their own generator
        seeded by ``seed``: the same evaluation games whatever training did, without touching the training stream."""
        self._check_split(split)
        if not isinstance(repeats, (int, np.integer)) or repeats < 1:
            raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
        target_ids = np.tile(self.splits[split], int(repeats))
        return self._games(split, target_ids, np.random.default_rng(seed))

    def reward(self, batch: ReferentialBatch, choices: np.ndarray) -> np.ndarray:
        """``(B,)`` float32: 1 where the listener chose the target."""
        choices = np.asarray(choices)
        if choices.shape != batch.target_index.shape:
            raise ValueError(f"choices must have shape {batch.target_index.shape} (one per game), got {choices.shape}")
        k = self.config.n_candidates
        if not np.issubdtype(choices.dtype, np.integer) or choices.min() < 0 or choices.max() >= k:
            raise ValueError(f"choices must be integers in [0, {k}) (candidate positions)")
        return (choices == batch.target_index).astype(np.float32)

    # ----------------------------------------------------------------------------------------- messages
    def message_lengths(self, messages: np.ndarray) -> np.ndarray:
        """``(B,)`` symbols that count in each ``(B, L)`` message: up to and including the first 0 with ``eos``,
        all ``max_len`` otherwise."""
        messages = self._check_messages(messages)
        L = self.config.max_len
        if not self.config.eos:
            return np.full(len(messages), L, dtype=np.int64)
        is_eos = messages == 0
        return np.where(is_eos.any(axis=1), is_eos.argmax(axis=1) + 1, L).astype(np.int64)

    def _check_messages(self, messages: np.ndarray) -> np.ndarray:
        messages = np.asarray(messages)
        cfg = self.config
        if messages.ndim != 2 or messages.shape[1] != cfg.max_len or not np.issubdtype(messages.dtype, np.integer):
            raise ValueError(
                f"messages must be an integer array (B, max_len={cfg.max_len}), got {messages.dtype} {messages.shape}"
            )
        if messages.size and (messages.min() < 0 or messages.max() >= cfg.vocab_size):
            raise ValueError(f"message symbols must be in [0, {cfg.vocab_size})")
        return messages

    # ------------------------------------------------------------------------------------------- agents
    #: The two agents, each a group of its own.
    groups: ClassVar[dict[str, tuple[str, ...]]] = {"speaker": ("speaker",), "listener": ("listener",)}
    state_space = None

    def group_observation_space(self, group: str) -> spaces.Space[Any]:
        """The speaker sees the target's attribute values; the listener the message, then every candidate's."""
        cfg = self.config
        if group == "speaker":
            return spaces.MultiDiscrete([cfg.n_values] * cfg.n_attributes)
        self._check_group(group)
        seen = [cfg.vocab_size] * cfg.max_len + [cfg.n_values] * (cfg.n_candidates * cfg.n_attributes)
        return spaces.MultiDiscrete(seen)

    def group_action_space(self, group: str) -> spaces.Space[Any]:
        """The speaker's message; the listener's choice of a candidate."""
        cfg = self.config
        if group == "speaker":
            return spaces.MultiDiscrete([cfg.vocab_size] * cfg.max_len)
        self._check_group(group)
        return spaces.Discrete(cfg.n_candidates)

    def _check_group(self, group: str) -> None:
        if group not in self.groups:
            raise KeyError(f"unknown group {group!r}; the referential game's are {list(self.groups)}")

    # ------------------------------------------------------------------------------------------ helpers
    def one_hot(self, values: np.ndarray) -> np.ndarray:
        """``(..., A)`` attribute values -> ``(..., A * V)`` float32 concatenated one-hots (the agents' input)."""
        V = self.config.n_values
        out = np.zeros((*values.shape[:-1], values.shape[-1] * V), dtype=np.float32)
        offsets = np.arange(values.shape[-1]) * V
        np.put_along_axis(out, values + offsets, 1.0, axis=-1)
        return out

    def _games(self, split: str, target_ids: np.ndarray, rng: np.random.Generator) -> ReferentialBatch:
        B, K = len(target_ids), self.config.n_candidates
        pool = self.splits["train"] if split == "train" else np.arange(self.config.n_objects)
        distractors = _distinct_distractors(rng, pool, target_ids, K - 1)
        target_index = rng.integers(0, K, size=B)
        # Put the target at target_index and the distractors, in their drawn order, in the other slots.
        slots = np.arange(K)[None, :]
        after = (slots > target_index[:, None]).astype(np.int64)
        gather = np.clip(slots - after, 0, K - 2)
        candidate_ids = np.where(
            slots == target_index[:, None], target_ids[:, None], np.take_along_axis(distractors, gather, axis=1)
        )
        return ReferentialBatch(
            self.objects[target_ids],
            target_ids.astype(np.int64),
            self.objects[candidate_ids],
            candidate_ids.astype(np.int64),
            target_index.astype(np.int64),
        )

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; the splits are {SPLITS}")


def make_referential(seed: int | None = None, **options: Any) -> ReferentialGame:
    """The game of ``referential-v0``: ``options`` are ``ReferentialConfig`` fields (an unknown one is an error
    naming the nearest)."""
    names = ReferentialConfig.field_names()
    for key in options:
        if key not in names:
            raise TypeError(
                f"referential-v0 has no option {key!r}{did_you_mean(key, names)} (options: {', '.join(names)})"
            )
    return ReferentialGame(ReferentialConfig(**options), seed=seed)


def _distinct_distractors(rng: np.random.Generator, pool: np.ndarray, target_ids: np.ndarray, n: int) -> np.ndarray:
    """``(B, n)`` ids from ``pool``, distinct within each row and different from that row's target.

    Drawn by rejection: rows with a repeat or the target are drawn again. A collision is rare (4 draws from 500
    objects collide in about 2% of rows), so this costs a few draws on average instead of a full shuffle per row.
    """
    out = rng.choice(pool, size=(len(target_ids), n))
    while True:
        srt = np.sort(np.concatenate([target_ids[:, None], out], axis=1), axis=1)
        bad = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if not bad.any():
            return out
        out[bad] = rng.choice(pool, size=(int(bad.sum()), n))
