"""The referential game: shapes, the train/held-out split, distractors, seeding and config errors."""

import numpy as np
import pytest

from marlkit.envs.text.referential import ReferentialConfig, ReferentialGame


def test_batch_shapes_and_target_position():
    game = ReferentialGame(ReferentialConfig(n_attributes=4, n_values=5, n_candidates=5), seed=0)
    b = game.sample_batch("train", 64)
    assert b.targets.shape == (64, 4) and b.target_ids.shape == (64,)
    assert b.candidates.shape == (64, 5, 4) and b.candidate_ids.shape == (64, 5) and b.target_index.shape == (64,)
    rows = np.arange(64)
    assert (b.candidate_ids[rows, b.target_index] == b.target_ids).all()
    assert (b.candidates == game.objects[b.candidate_ids]).all() and (b.targets == game.objects[b.target_ids]).all()
    assert len(np.unique(b.target_index)) == 5  # the target is shuffled among the candidates
    assert game.one_hot(b.targets).shape == (64, 20) and (game.one_hot(b.candidates).sum(-1) == 4).all()


def test_objects_are_every_combination():
    game = ReferentialGame(ReferentialConfig(n_attributes=3, n_values=4))
    assert game.objects.shape == (64, 3) and len(np.unique(game.objects, axis=0)) == 64


def test_candidates_are_distinct_and_training_never_shows_heldout_objects():
    game = ReferentialGame(ReferentialConfig(n_attributes=3, n_values=4, n_candidates=6), seed=1)
    heldout = set(game.splits["heldout"].tolist())
    for _ in range(20):
        b = game.sample_batch("train", 256)
        assert all(len(set(row)) == 6 for row in b.candidate_ids.tolist())
        assert not heldout & set(b.candidate_ids.ravel().tolist())
    h = game.sample_batch("heldout", 256)
    assert set(h.target_ids.tolist()) <= heldout
    assert all(len(set(row)) == 6 for row in h.candidate_ids.tolist())
    # held-out games draw distractors from every object (documented): training objects do appear among them
    assert set(h.candidate_ids.ravel().tolist()) - heldout


def test_split_is_disjoint_complete_and_fixed_by_split_seed():
    cfg = ReferentialConfig(n_attributes=4, n_values=5, heldout_fraction=0.2, split_seed=3)
    a, b = ReferentialGame(cfg, seed=0), ReferentialGame(cfg, seed=99)
    train, heldout = a.splits["train"], a.splits["heldout"]
    assert len(heldout) == 125 and len(train) == 500
    assert not set(train) & set(heldout) and len(set(train) | set(heldout)) == 625
    assert (b.splits["heldout"] == heldout).all()  # the game seed does not move the split
    other = ReferentialGame(ReferentialConfig(n_attributes=4, n_values=5, split_seed=4))
    assert not (other.splits["heldout"] == heldout).all()
    # every attribute value occurs in training: held-out objects are new combinations of seen values
    seen = a.objects[train]
    assert all(set(seen[:, k]) == set(range(5)) for k in range(4))


def test_same_seed_same_games_and_eval_batch_is_independent_of_training():
    cfg = ReferentialConfig()
    g1, g2 = ReferentialGame(cfg, seed=7), ReferentialGame(cfg, seed=7)
    for _ in range(3):
        b1, b2 = g1.sample_batch("train", 32), g2.sample_batch("train", 32)
        assert all((x == y).all() for x, y in zip(b1, b2))
    assert not (ReferentialGame(cfg, seed=8).sample_batch("train", 32).candidate_ids == b1.candidate_ids).all()
    e1 = g1.eval_batch("heldout", repeats=2, seed=5)
    g2.sample_batch("train", 500)  # a different training history
    e2 = g2.eval_batch("heldout", repeats=2, seed=5)
    assert all((x == y).all() for x, y in zip(e1, e2))
    assert len(e1.target_ids) == 2 * len(g1.splits["heldout"])
    g1.reset(seed=11)
    g2.reset(seed=11)
    assert (g1.sample_batch("heldout", 8).candidate_ids == g2.sample_batch("heldout", 8).candidate_ids).all()


def test_reward_and_message_lengths():
    game = ReferentialGame(ReferentialConfig(max_len=4, vocab_size=6, eos=True), seed=0)
    b = game.sample_batch("train", 4)
    choices = b.target_index.copy()
    choices[0] = (choices[0] + 1) % 5
    assert game.reward(b, choices).tolist() == [0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        game.reward(b, np.full(4, 5))
    with pytest.raises(ValueError, match="shape"):
        game.reward(b, np.zeros(3, dtype=int))
    msgs = np.array([[3, 0, 2, 2], [0, 1, 1, 1], [1, 2, 3, 4], [5, 5, 0, 0]])
    assert game.message_lengths(msgs).tolist() == [2, 1, 4, 3]
    fixed = ReferentialGame(ReferentialConfig(max_len=4, vocab_size=6, eos=False))
    assert fixed.message_lengths(msgs).tolist() == [4, 4, 4, 4]
    with pytest.raises(ValueError, match="max_len=4"):
        game.message_lengths(msgs[:, :3])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        game.message_lengths(msgs + 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_values": 1}, "n_values must be >= 2"),
        ({"n_candidates": 1}, "n_candidates must be >= 2"),
        ({"max_len": 0}, "max_len must be >= 1"),
        ({"n_attributes": 2.0}, "must be an int"),
        ({"vocab_size": 2, "eos": True}, "vocab_size must be >= 3"),
        ({"heldout_fraction": 1.0}, r"heldout_fraction must be in \(0, 1\)"),
        ({"n_attributes": 1, "n_values": 3, "heldout_fraction": 0.1}, "holds none out"),
        ({"n_attributes": 1, "n_values": 4, "n_candidates": 4, "heldout_fraction": 0.25}, "cannot fill a game"),
    ],
)
def test_config_errors_say_what_is_allowed(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ReferentialConfig(**kwargs)


def test_a_split_that_hides_a_value_is_refused():
    # 1 attribute: every held-out object is a value never seen in training
    with pytest.raises(ValueError, match="another split_seed"):
        ReferentialGame(ReferentialConfig(n_attributes=1, n_values=10, n_candidates=2))


def test_bad_split_and_batch_size():
    game = ReferentialGame()
    with pytest.raises(ValueError, match="unknown split 'test'"):
        game.sample_batch("test", 4)
    with pytest.raises(ValueError, match="positive integer"):
        game.sample_batch("train", 0)
    with pytest.raises(TypeError, match="ReferentialConfig"):
        ReferentialGame({"n_attributes": 3})
