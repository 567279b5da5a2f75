"""marlkit.metrics on hand-built cases whose answers are worked out in the comments."""

import math

import numpy as np
import pytest

from marlkit import metrics as M

# Every meaning of 2 attributes x 2 values, and two languages for them.
MEANINGS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
# Compositional: position 0 names attribute 0 (symbols 0/1), position 1 names attribute 1 (symbols 2/3).
COMPOSITIONAL = np.array([[0, 2], [0, 3], [1, 2], [1, 3]])
# Holistic: one unanalysable symbol per meaning.
HOLISTIC = np.array([[0], [1], [2], [3]])
CONSTANT = np.array([[5, 5], [5, 5], [5, 5], [5, 5]])


# ------------------------------------------------------------------------------------------------------ task
def test_task_completion_rate():
    assert M.task_completion_rate([True, False, True, True]) == 0.75
    with pytest.raises(ValueError, match="one entry per episode"):
        M.task_completion_rate([[True]])


def test_communication_efficiency():
    # 4 episodes, 2 successes; 2+4+0+2 = 8 messages and 10+20+0+10 = 40 tokens -> 4 messages, 20 tokens per success;
    # 40 tokens / 8 messages = 5 tokens per message, x log2(16) = 4 bits -> 20 bits per message.
    cost = M.communication_efficiency([1, 0, 0, 1], [2, 4, 0, 2], [10, 20, 0, 10], vocab_size=16)
    assert cost.messages_per_success == 4.0 and cost.tokens_per_success == 20.0
    assert cost.bits_per_message == pytest.approx(20.0)
    assert M.communication_efficiency([0, 0], [1, 1], [3, 3]).messages_per_success == math.inf
    with pytest.raises(ValueError, match="one entry per episode"):
        M.communication_efficiency([1, 0], [1], [1, 1])


def test_outcome_arrays_reads_text_outcomes():
    from marlkit.envs.text import TextOutcome

    done, msgs, toks = M.outcome_arrays([TextOutcome(completed=True, messages=2, tokens=7), TextOutcome()])
    assert done.tolist() == [True, False] and msgs.tolist() == [2, 0] and toks.tolist() == [7, 0]


# -------------------------------------------------------------------------------------------------- messages
def test_message_entropy():
    assert M.message_entropy(COMPOSITIONAL) == pytest.approx(2.0)  # 4 equally likely messages
    assert M.message_entropy(CONSTANT) == 0.0
    # p = (1/2, 1/4, 1/4): 0.5 * 1 + 2 * 0.25 * 2 = 1.5 bits
    assert M.message_entropy([["a", "b"], ["a", "b"], ["b"], ["c"]]) == pytest.approx(1.5)
    # with eos=0 "3 0 1" and "3 0 2" are the same message "3"
    assert M.message_entropy(np.array([[3, 0, 1], [3, 0, 2]]), eos=0) == 0.0
    assert M.message_entropy(np.array([[3, 0, 1], [3, 0, 2]])) == pytest.approx(1.0)


def test_spearman_by_hand():
    # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8
    assert M.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties: ranks (1.5, 1.5, 3) vs (1, 2, 3); centred (-.5, -.5, 1) . (-1, 0, 1) = 1.5, norms^2 1.5 and 2
    assert M.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    assert math.isnan(M.spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_edit_distances():
    got = M.edit_distances(["kitten", "flaw", "", "ab", [1, 2, 3]], ["sitting", "lawn", "abc", "ba", [1, 3]])
    assert got.tolist() == [3, 2, 3, 2, 1]
    # eos truncates before comparing: [1, 2] vs [1]
    assert M.edit_distances(np.array([[1, 2, 0, 7]]), np.array([[1, 0, 5, 5]]), eos=0).tolist() == [1]


def test_topographic_similarity():
    # The compositional language's edit distances equal the meanings' Hamming distances pair for pair: rho = 1.
    assert M.topographic_similarity(MEANINGS, COMPOSITIONAL) == pytest.approx(1.0)
    # Constant message: every edit distance is 0, the correlation is undefined, reported as 0 (documented).
    assert M.topographic_similarity(MEANINGS, CONSTANT) == 0.0
    # Meanings 00, 01, 11 and messages "00", "01", "10": pairs (0,1), (0,2), (1,2) have Hamming 1, 2, 1 and edit
    # 1, 1, 2. Ranks (1.5, 3, 1.5) and (1.5, 1.5, 3): centred products -0.75 over 1.5 -> rho = -0.5.
    rho = M.topographic_similarity(np.array([[0, 0], [0, 1], [1, 1]]), np.array([[0, 0], [0, 1], [1, 0]]))
    assert rho == pytest.approx(-0.5)


def test_posdis_and_bosdis():
    # Compositional: each position (and each symbol's count) carries 1 bit about one attribute, 0 about the other,
    # and has 1 bit of entropy: gap 1 everywhere.
    assert M.posdis(MEANINGS, COMPOSITIONAL) == pytest.approx(1.0)
    assert M.bosdis(MEANINGS, COMPOSITIONAL) == pytest.approx(1.0)
    # Holistic: the one position has 2 bits and 1 bit about each attribute -> gap 0. Each symbol's count is 1 for one
    # meaning in 4: H = h(1/4) = 0.811, and it says the same (0.811 - 0.5) about both attributes -> gap 0.
    assert M.posdis(MEANINGS, HOLISTIC) == pytest.approx(0.0)
    assert M.bosdis(MEANINGS, HOLISTIC) == pytest.approx(0.0)
    # Position 1 varies with attribute 0 only, position 0 is constant (skipped): posdis 1. Both symbols 0/1 stand
    # for attribute 0 -> bosdis 1, whatever the order of the symbols.
    assert M.posdis(MEANINGS, np.array([[9, 0], [9, 0], [9, 1], [9, 1]])) == pytest.approx(1.0)
    assert M.bosdis(MEANINGS, np.array([[0, 9], [9, 0], [1, 9], [9, 1]])) == pytest.approx(1.0)
    assert M.posdis(MEANINGS, CONSTANT) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        M.posdis(MEANINGS[:, :1], HOLISTIC)


# --------------------------------------------------------------------------------------- signalling/listening
def test_mutual_information():
    assert M.mutual_information([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert M.mutual_information([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    assert M.mutual_information(MEANINGS, HOLISTIC) == pytest.approx(2.0)  # rows are values


def test_positive_signalling():
    full = M.positive_signalling(MEANINGS, COMPOSITIONAL)
    assert full.mutual_information == pytest.approx(2.0) and full.normalized == pytest.approx(1.0)
    assert full.context_independence == pytest.approx(1.0)  # every concept has its own symbol
    none = M.positive_signalling(MEANINGS, CONSTANT)
    assert none.mutual_information == 0.0 and none.normalized == 0.0


def test_context_independence_by_hand():
    # Holistic: concept "attribute 0 = 0" occurs with symbols 0 and 1 (meanings 00 and 01). p(c|m) = 1 for both,
    # p(m|c) = 1/2 -> 0.5; the same for every concept.
    assert M.context_independence(MEANINGS, HOLISTIC) == pytest.approx(0.5)
    # Constant symbol 5: p(c|5) = 2/4 for every concept, p(5|c) = 1 -> 0.5.
    assert M.context_independence(MEANINGS, CONSTANT) == pytest.approx(0.5)


def test_listener_influence():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert M.listener_influence(p, p) == 0.0
    # disjoint one-hots: JS = 1 bit, TV = 1; second row equal -> mean 0.5
    q = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert M.listener_influence(p, q) == pytest.approx(0.5)
    assert M.listener_influence(p, q, "tv") == pytest.approx(0.5)
    # KL((1/2, 1/2) || (1/4, 3/4)) = 0.5 log2 2 + 0.5 log2 (2/3) = 0.5 - 0.2925 = 0.2075
    assert M.listener_influence([[0.5, 0.5]], [[0.25, 0.75]], "kl") == pytest.approx(0.5 + 0.5 * math.log2(2 / 3))
    with pytest.raises(ValueError, match="unknown divergence"):
        M.listener_influence(p, q, "hellinger")
    with pytest.raises(ValueError, match="summing"):
        M.listener_influence([[0.5, 0.6]], [[0.5, 0.5]])


def test_causal_influence_of_communication():
    # Two equally likely messages; a listener that follows them deterministically: I(m; a) = 1 bit.
    follows = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    assert M.causal_influence_of_communication(follows, [[0.5, 0.5]]) == pytest.approx(1.0)
    # A listener that ignores the message: 0. A speaker that always sends message 0: 0 as well.
    ignores = np.array([[[0.3, 0.7], [0.3, 0.7]]])
    assert M.causal_influence_of_communication(ignores, [[0.5, 0.5]]) == pytest.approx(0.0)
    assert M.causal_influence_of_communication(follows, [[1.0, 0.0]]) == pytest.approx(0.0)


# ------------------------------------------------------------------------------------------------ collaboration
def test_collaboration_gain():
    out = M.collaboration_gain([1, 1, 1, 0], {"speaker": [1, 0, 0, 0], "listener": [1, 1, 0, 0]})
    assert out.joint_rate == 0.75 and out.alone_rates == {"speaker": 0.25, "listener": 0.5}
    assert out.gain == pytest.approx(0.25)


def test_coordination_rate():
    assert M.coordination_rate([[0, 0], [1, 0], [2, 2], [1, 1]]) == 0.75
    assert M.coordination_rate([["stag", "stag", "stag"], ["stag", "hare", "stag"]]) == 0.5
    # anti-coordination: complementary = different actions
    different = ~np.eye(2, dtype=bool)
    assert M.coordination_rate([[0, 1], [1, 1], [1, 0], [0, 0]], compatible=different) == 0.5
    with pytest.raises(ValueError, match="integers indexing"):
        M.coordination_rate([[0, 2]], compatible=different)
