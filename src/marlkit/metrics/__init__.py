"""Evaluation metrics shared by every env family: task completion, communication, collaboration.

Pure NumPy functions over arrays of episodes (one entry per episode or per game), so the same code scores a batched
array env, a text game (``outcome_arrays`` turns ``TextOutcome``s into arrays) and the referential game.
Information is measured in **bits** throughout, with plug-in (empirical frequency) estimates: they are biased
upwards on few samples, so compare them between runs scored on the same number of episodes.

**Task**

* ``task_completion_rate`` — share of episodes whose task was completed.
* ``communication_efficiency`` — what success costs: messages and tokens per *successful* episode (all spent
  divided by successes, so failures count against it), and bits per message = mean tokens per message x
  log2(vocabulary), the channel capacity a message uses (``message_entropy`` is how much of it carries
  information).

**Messages and compositionality** (messages: an integer array ``(N, L)`` or a sequence of sequences of any
hashable tokens — a ``str`` is a sequence of characters, pass ``text.split()`` for words. With ``eos=s`` the first
``s`` ends a message and neither it nor what follows is part of the message.)

* ``message_entropy`` — entropy of the distribution of whole messages; 0 for a constant message.
* ``topographic_similarity`` — Spearman correlation between the Hamming distances of pairs of meanings and the
  edit (Levenshtein) distances of their messages, over all pairs (Brighton & Kirby 2006, "Understanding
  Linguistic Evolution by Visualizing the Emergence of Topographic Mappings"; used by Lazaridou et al. 2018).
  When either distance is the same for every pair (e.g. a constant message) the correlation is undefined; we
  return **0.0**, "no structure", rather than NaN, so means over seeds stay defined.
* ``posdis`` — positional disentanglement (Chaabouni et al. 2020, "Compositionality and Generalization in Emergent
  Languages", https://arxiv.org/abs/2004.09124): for each message position j, the gap between the mutual
  information of its symbol with the most and the second most informative attribute, over the symbol's entropy;
  averaged over positions whose symbol varies. 1 when each position names one attribute; 0 for a holistic code.
  A message too short for position j has a "no symbol" value there. 0.0 when no position varies.
* ``bosdis`` — bag-of-symbols disentanglement (same paper): the same gap for the *count* of each symbol in the
  message instead of the symbol at a position, so it rewards a code where each symbol names one attribute's value
  wherever it stands.

**Positive signalling and positive listening** (Lowe et al. 2019, "On the Pitfalls of Measuring Emergent
Communication", https://arxiv.org/abs/1903.05168): a speaker *signals positively* when its messages depend on what
it observes; a listener *listens positively* when its actions depend on the messages it receives. A high value of
the first does not imply the second (messages can be informative and ignored), so measure both.

* ``mutual_information`` — I(X; Y) between two discrete variables (rows of an array count as one value).
* ``positive_signalling`` — I(observation; message), also divided by H(observation) (1 = the message determines
  the observation), and ``context_independence``.
* ``context_independence`` — Bogin et al. (2018), "Emergence of Communication in an Interactive World with
  Consistent Speakers", https://arxiv.org/abs/1809.00549, in Lowe et al.'s notation: concepts c are
  (attribute, value) pairs, symbols m are message symbols (position ignored), counted in episodes where both occur;
  p(c|m) = n(c, m) / n(m), p(m|c) = n(c, m) / n(c); m^c = argmax_m p(c|m) (ties go to the higher p(m|c)); CI is
  the mean over concepts of p(c|m^c) p(m^c|c). 1 when every concept has its own symbol.
* ``listener_influence`` — the mean divergence between the listener's action distribution with the real message
  and with the message ablated or replaced (Jensen-Shannon in bits by default; 0 = the message changes nothing).
* ``causal_influence_of_communication`` — Lowe et al.'s CIC: for each observation, the mutual information between
  an intervened message (drawn from the speaker's distribution) and the listener's action, averaged.

**Collaboration**

* ``collaboration_gain`` — joint success rate against each agent's success rate alone (its partner replaced by one
  that does not help: ablated messages, a random or no-op partner — the env family says which), and the gain of
  the team over its best member alone.
* ``coordination_rate`` — share of episodes where the agents' actions match (all equal) or, given a table of
  compatible pairs, are complementary (e.g. a matrix game's cells that pay, or "different" in anti-coordination).

**Diversity and roles** (submodules, re-exported here)

* ``marlkit.metrics.diversity`` — System Neural Diversity (Bettini et al.): ``system_neural_diversity``,
  ``pairwise_behavioural_distance``, ``gaussian_w2``, ``categorical_distance``.
* ``marlkit.metrics.roles`` — role specialisation (normalised mutual information of agent and sub-task,
  ``role_specialisation``), Gorelick et al.'s division of labour (``division_of_labour``) and agreement on a
  leader (``leader_agreement``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from marlkit.metrics.diversity import categorical_distance as categorical_distance
from marlkit.metrics.diversity import gaussian_w2 as gaussian_w2
from marlkit.metrics.diversity import pairwise_behavioural_distance as pairwise_behavioural_distance
from marlkit.metrics.diversity import system_neural_diversity as system_neural_diversity
from marlkit.metrics.roles import DivisionOfLabour as DivisionOfLabour
from marlkit.metrics.roles import assignments_to_counts as assignments_to_counts
from marlkit.metrics.roles import division_of_labour as division_of_labour
from marlkit.metrics.roles import leader_agreement as leader_agreement
from marlkit.metrics.roles import role_specialisation as role_specialisation

# ------------------------------------------------------------------------------------------------------- task


def task_completion_rate(success: Any) -> float:
    """Share of episodes whose task was completed (``success``: one bool per episode)."""
    s = _bools(success, "success")
    return float(s.mean())


@dataclass(frozen=True)
class CommunicationCost:
    """What success costs in communication (``inf`` per success when no episode succeeded)."""

    messages_per_success: float
    tokens_per_success: float
    bits_per_message: float | None
    """Mean tokens per message x log2(vocab_size); None when no vocabulary size was given."""


def communication_efficiency(
    success: Any, messages: Any, tokens: Any, vocab_size: int | None = None
) -> CommunicationCost:
    """Messages and tokens spent over all episodes per successful episode, and the bits a message uses."""
    s = _bools(success, "success")
    m = np.asarray(messages, dtype=np.float64)
    t = np.asarray(tokens, dtype=np.float64)
    if m.shape != s.shape or t.shape != s.shape:
        raise ValueError(
            f"success, messages and tokens need one entry per episode; got shapes {s.shape}, {m.shape}, {t.shape}"
        )
    n = s.sum()
    per = (lambda x: float(x.sum() / n)) if n else (lambda x: float("inf"))
    bits = None
    if vocab_size is not None:
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        bits = float(t.sum() / m.sum() * np.log2(vocab_size)) if m.sum() else 0.0
    return CommunicationCost(per(m), per(t), bits)


def outcome_arrays(outcomes: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(completed, messages, tokens)`` arrays from text-game outcomes (anything with those attributes)."""
    outs = list(outcomes)
    return (
        np.array([bool(o.completed) for o in outs], dtype=bool),
        np.array([o.messages for o in outs], dtype=np.int64),
        np.array([o.tokens for o in outs], dtype=np.int64),
    )


# ----------------------------------------------------------------------------------- messages, compositionality


def message_entropy(messages: Any, eos: Hashable | None = None) -> float:
    """Entropy in bits of the empirical distribution of whole messages."""
    ids = _message_ids(_sequences(messages, eos)[0])
    return _entropy(ids)


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN when either input is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"spearman needs two equally long inputs of at least 2 values, got {len(x)} and {len(y)}")
    rx, ry = _ranks(x) - (len(x) + 1) / 2, _ranks(y) - (len(y) + 1) / 2
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / denom) if denom > 0 else float("nan")


def edit_distances(a: Any, b: Any, eos: Hashable | None = None) -> np.ndarray:
    """Levenshtein distance (insert, delete, substitute: 1 each) between ``a[i]`` and ``b[i]`` for every i."""
    seqs_a, seqs_b = list(_iter_messages(a, eos)), list(_iter_messages(b, eos))
    if len(seqs_a) != len(seqs_b):
        raise ValueError(f"edit_distances pairs a[i] with b[i]: got {len(seqs_a)} and {len(seqs_b)} messages")
    padded, lengths = _pad(seqs_a + seqs_b)
    n = len(seqs_a)
    return _edit(padded[:n], lengths[:n], padded[n:], lengths[n:])


def topographic_similarity(meanings: Any, messages: Any, eos: Hashable | None = None) -> float:
    """Spearman between meaning Hamming distances and message edit distances over all pairs (0.0 if undefined)."""
    mean = _meanings(meanings)
    padded, lengths = _sequences(messages, eos)
    if len(padded) != len(mean):
        raise ValueError(f"one message per meaning: got {len(mean)} meanings and {len(padded)} messages")
    if len(mean) < 3:
        raise ValueError(f"topographic similarity needs at least 3 meanings (2 pairs), got {len(mean)}")
    i, j = np.triu_indices(len(mean), 1)
    meaning_d = (mean[i] != mean[j]).sum(1)
    message_d = _edit(padded[i], lengths[i], padded[j], lengths[j])
    rho = spearman(meaning_d, message_d)
    return 0.0 if np.isnan(rho) else rho


def posdis(meanings: Any, messages: Any, eos: Hashable | None = None) -> float:
    """Positional disentanglement (Chaabouni et al. 2020); a position past a message's end holds "no symbol"."""
    mean = _meanings(meanings)
    padded, _ = _sequences(messages, eos)
    return _information_gap(mean, padded, "posdis")


def bosdis(meanings: Any, messages: Any, eos: Hashable | None = None) -> float:
    """Bag-of-symbols disentanglement (Chaabouni et al. 2020): the gap for each symbol's count in the message."""
    mean = _meanings(meanings)
    padded, _ = _sequences(messages, eos)
    symbols = np.unique(padded[padded >= 0])
    counts = (padded[:, :, None] == symbols[None, None, :]).sum(1)  # (N, n_symbols)
    return _information_gap(mean, counts, "bosdis")


# ---------------------------------------------------------------------------------- signalling and listening


def mutual_information(x: Any, y: Any) -> float:
    """I(X; Y) in bits from paired samples; each row of a 2-D input is one value."""
    xi, yi = _value_ids(x), _value_ids(y)
    if len(xi) != len(yi):
        raise ValueError(f"mutual_information needs paired samples, got {len(xi)} and {len(yi)}")
    return _mutual_information(xi, yi)


@dataclass(frozen=True)
class PositiveSignalling:
    """How much a speaker's messages say about what it observes."""

    mutual_information: float
    """I(observation; message) in bits."""
    normalized: float
    """I(observation; message) / H(observation): 1 when the message determines the observation (0 if H = 0)."""
    context_independence: float


def positive_signalling(observations: Any, messages: Any, eos: Hashable | None = None) -> PositiveSignalling:
    """Positive signalling of a speaker from its observations ``(N, A)`` (attribute values) and messages."""
    obs = _meanings(observations)
    msg = _message_ids(_sequences(messages, eos)[0])
    if len(msg) != len(obs):
        raise ValueError(f"one message per observation: got {len(obs)} observations and {len(msg)} messages")
    oi = _value_ids(obs)
    mi = _mutual_information(oi, msg)
    h = _entropy(oi)
    return PositiveSignalling(mi, mi / h if h > 0 else 0.0, context_independence(obs, messages, eos))


def context_independence(meanings: Any, messages: Any, eos: Hashable | None = None) -> float:
    """Bogin et al. (2018) context independence between (attribute, value) concepts and message symbols."""
    mean = _meanings(meanings)
    padded, _ = _sequences(messages, eos)
    if len(padded) != len(mean):
        raise ValueError(f"one message per meaning: got {len(mean)} meanings and {len(padded)} messages")
    concepts = mean + np.arange(mean.shape[1]) * (mean.max() + 1)  # (attribute, value) -> one concept id
    n_concepts = int(concepts.max()) + 1
    symbols = np.unique(padded[padded >= 0])
    has_c = np.zeros((len(mean), n_concepts), dtype=bool)
    has_c[np.arange(len(mean))[:, None], concepts] = True
    has_m = (padded[:, :, None] == symbols[None, None, :]).any(1)  # (N, n_symbols)
    n_cm = has_c.T.astype(np.float64) @ has_m  # episodes where both occur
    n_c, n_m = has_c.sum(0).astype(np.float64), has_m.sum(0).astype(np.float64)
    present = n_c > 0
    if not present.any() or len(symbols) == 0:
        return 0.0
    p_c_given_m = n_cm / np.maximum(n_m, 1)[None, :]
    p_m_given_c = n_cm / np.maximum(n_c, 1)[:, None]
    # argmax over m of p(c|m), ties broken by the higher p(m|c): lexicographic order of the pair
    best = np.lexsort((p_m_given_c, p_c_given_m), axis=1)[:, -1]
    rows = np.arange(n_concepts)
    ci = p_c_given_m[rows, best] * p_m_given_c[rows, best]
    return float(ci[present].mean())


def listener_influence(probs: Any, probs_ablated: Any, divergence: str = "js") -> float:
    """Mean divergence between the listener's action distributions ``(N, n_actions)`` with the real message and
    with it ablated or replaced: ``"js"`` (Jensen-Shannon, bits, in [0, 1]), ``"tv"`` (total variation, [0, 1])
    or ``"kl"`` (KL(real || ablated), bits)."""
    p, q = _distributions(probs, "probs"), _distributions(probs_ablated, "probs_ablated")
    if p.shape != q.shape:
        raise ValueError(f"probs and probs_ablated must have the same shape, got {p.shape} and {q.shape}")
    if divergence == "tv":
        d = 0.5 * np.abs(p - q).sum(-1)
    elif divergence == "kl":
        d = _kl(p, q)
    elif divergence == "js":
        mid = 0.5 * (p + q)
        d = 0.5 * _kl(p, mid) + 0.5 * _kl(q, mid)
    else:
        raise ValueError(f"unknown divergence {divergence!r}; choose 'js', 'tv' or 'kl'")
    return float(d.mean())


def causal_influence_of_communication(action_probs: Any, message_probs: Any) -> float:
    """Lowe et al.'s CIC in bits: ``action_probs (N, n_messages, n_actions)`` is the listener's policy with each
    message put in its channel by intervention, ``message_probs (N, n_messages)`` the speaker's distribution, for
    N observations; returns the mean over observations of I(message; action)."""
    pa = _distributions(action_probs, "action_probs")
    pm = _distributions(message_probs, "message_probs")
    if pa.ndim != 3 or pm.shape != pa.shape[:2]:
        raise ValueError(
            f"action_probs must be (N, n_messages, n_actions) and message_probs (N, n_messages); got "
            f"{pa.shape} and {pm.shape}"
        )
    marginal = np.einsum("nm,nma->na", pm, pa)  # p(a | o) with the message integrated out
    kl = _kl(pa, marginal[:, None, :])  # inf only for messages never sent
    return float(np.where(pm > 0, pm * np.where(pm > 0, kl, 0.0), 0.0).sum(-1).mean())


# ---------------------------------------------------------------------------------------------- collaboration


@dataclass(frozen=True)
class Collaboration:
    joint_rate: float
    alone_rates: dict[str, float]
    gain: float
    """``joint_rate`` minus the best of ``alone_rates``: what the team achieves beyond its best member alone."""


def collaboration_gain(joint_success: Any, alone_success: Mapping[str, Any]) -> Collaboration:
    """Joint success rate against each agent's success rate alone (``alone_success``: agent -> bools)."""
    if not alone_success:
        raise ValueError("alone_success needs at least one agent's successes when acting alone")
    joint = task_completion_rate(joint_success)
    alone = {agent: task_completion_rate(s) for agent, s in alone_success.items()}
    return Collaboration(joint, alone, joint - max(alone.values()))


def coordination_rate(actions: Any, compatible: Any = None) -> float:
    """Share of episodes where the agents coordinate. ``actions (N, n_agents)``: any comparable values; without
    ``compatible`` every agent must pick the same action. ``compatible``: an ``(n, n)`` bool table, true where
    (agent 0's action, agent 1's action) coordinate (two agents, integer actions)."""
    a = np.asarray(actions)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"actions must be (episodes, agents) with at least 2 agents, got shape {a.shape}")
    if compatible is None:
        return float((a == a[:, :1]).all(1).mean())
    table = np.asarray(compatible, dtype=bool)
    if a.shape[1] != 2 or table.ndim != 2:
        raise ValueError(
            f"a compatibility table needs two agents and an (n, n) table; got actions {a.shape}, table {table.shape}"
        )
    if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or (a >= np.array(table.shape)).any():
        raise ValueError(f"with a compatibility table of shape {table.shape}, actions must be integers indexing it")
    return float(table[a[:, 0], a[:, 1]].mean())


# -------------------------------------------------------------------------------------------------- helpers


def _bools(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array (one entry per episode), got shape {a.shape}")
    return a.astype(bool)


def _meanings(meanings: Any) -> np.ndarray:
    m = np.asarray(meanings)
    if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer) or m.size == 0 or m.min() < 0:
        raise ValueError(
            f"meanings must be a non-empty (N, n_attributes) array of non-negative integers, got {m.dtype} {m.shape}"
        )
    return m.astype(np.int64)


def _iter_messages(messages: Any, eos: Hashable | None) -> Iterable[Sequence[Hashable]]:
    if isinstance(messages, np.ndarray) and messages.ndim != 2:
        raise ValueError(f"a message array must be (N, L), got shape {messages.shape}")
    for msg in messages:
        seq = list(msg.tolist() if isinstance(msg, np.ndarray) else msg)
        if eos is not None and eos in seq:
            seq = seq[: seq.index(eos)]
        yield seq


def _pad(seqs: list[Sequence[Hashable]]) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences -> ``(N, L_max)`` int ids (-1 past the end) and lengths; equal tokens get equal ids."""
    vocab: dict[Hashable, int] = {}
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.full((len(seqs), max(int(lengths.max(initial=0)), 1)), -1, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = [vocab.setdefault(tok, len(vocab)) for tok in s]
    return out, lengths


def _sequences(messages: Any, eos: Hashable | None) -> tuple[np.ndarray, np.ndarray]:
    arr = messages if isinstance(messages, np.ndarray) else None
    if arr is not None and arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer) and arr.min(initial=0) >= 0:
        # fast path for integer arrays: truncate at eos with array ops
        arr = arr.astype(np.int64)
        lengths = np.full(len(arr), arr.shape[1], dtype=np.int64)
        if eos is not None:
            is_eos = arr == eos
            lengths = np.where(is_eos.any(1), is_eos.argmax(1), arr.shape[1])
            arr = np.where(np.arange(arr.shape[1])[None, :] < lengths[:, None], arr, -1)
        return arr, lengths
    seqs = list(_iter_messages(messages, eos))
    if not seqs:
        raise ValueError("messages is empty")
    return _pad(seqs)


def _message_ids(padded: np.ndarray) -> np.ndarray:
    return np.unique(padded, axis=0, return_inverse=True)[1].ravel()


def _value_ids(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        return np.unique(a, return_inverse=True)[1].ravel()
    if a.ndim == 2:
        return np.unique(a, axis=0, return_inverse=True)[1].ravel()
    raise ValueError(f"values must be 1-D (one per sample) or 2-D (one row per sample), got shape {a.shape}")


def _entropy(ids: np.ndarray) -> float:
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum() + 0.0)


def _mutual_information(xi: np.ndarray, yi: np.ndarray) -> float:
    joint = xi * (yi.max() + 1) + yi
    return max(_entropy(xi) + _entropy(yi) - _entropy(joint), 0.0)


def _information_gap(meanings: np.ndarray, features: np.ndarray, name: str) -> float:
    """Mean over non-constant feature columns of (I(f; best attr) - I(f; second attr)) / H(f)."""
    if meanings.shape[1] < 2:
        raise ValueError(
            f"{name} compares the two most informative attributes: it needs at least 2, got {meanings.shape[1]}"
        )
    if len(features) != len(meanings):
        raise ValueError(f"one message per meaning: got {len(meanings)} meanings and {len(features)} messages")
    attrs = [_value_ids(meanings[:, k]) for k in range(meanings.shape[1])]
    gaps = []
    for j in range(features.shape[1]):
        f = _value_ids(features[:, j])
        h = _entropy(f)
        if h <= 0:
            continue
        mi = sorted((_mutual_information(a, f) for a in attrs), reverse=True)
        gaps.append((mi[0] - mi[1]) / h)
    return float(np.mean(gaps)) if gaps else 0.0


def _edit(a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """Levenshtein distances between padded sequences, all pairs at once: the dynamic programme runs over the
    cells of the table, each cell a vector op over pairs (row i of the table is kept while i <= len(a))."""
    P, La, Lb = len(a), a.shape[1], b.shape[1]
    out = np.where(la == 0, lb, 0).astype(np.int64)
    prev = np.broadcast_to(np.arange(Lb + 1), (P, Lb + 1)).copy()  # row 0: j insertions
    for i in range(1, La + 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        for j in range(1, Lb + 1):
            sub = prev[:, j - 1] + (a[:, i - 1] != b[:, j - 1])
            cur[:, j] = np.minimum(np.minimum(prev[:, j] + 1, cur[:, j - 1] + 1), sub)
        done = la == i
        out[done] = cur[done, lb[done]]
        prev = cur
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    bounds = np.r_[starts, len(x)]
    mean_rank = (bounds[:-1] + 1 + bounds[1:]) / 2  # ranks start+1 .. end, averaged
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1
    ranks = np.empty(len(x))
    ranks[order] = mean_rank[group]
    return ranks


def _distributions(p: Any, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim < 2 or (a < -1e-9).any() or not np.allclose(a.sum(-1), 1.0, atol=1e-5):
        raise ValueError(
            f"{name} must hold probability distributions along its last axis (non-negative, summing "
            f"to 1), shape (..., n); got shape {a.shape}"
        )
    return np.clip(a, 0.0, None)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) in bits along the last axis; 0 log 0 = 0, and inf where q = 0 < p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log2(p) - np.log2(q)), 0.0)
    return terms.sum(-1)
