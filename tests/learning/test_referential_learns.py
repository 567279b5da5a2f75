"""A speaker and a listener learn to communicate about objects they never saw in training.

Game: 3 attributes x 5 values (125 objects, 25 held out), 3 candidates (chance 1/3), messages of 3 symbols from a
vocabulary of 8. Held-out accuracy is greedy play with every held-out object as the target 20 times (500 games).
(3 x 4 is too small to generalise from: 51 training objects, and Gumbel-softmax reached 0.97 on them but 0.79 on
the 13 held-out ones.) The full-size benchmark (4 x 5, 5 candidates) is ``benchmarks/referential.py``.
"""

import numpy as np
import pytest
import torch

from marlkit.algorithms.signalling import Signalling, SignallingConfig
from marlkit.envs.text.referential import ReferentialConfig, ReferentialGame

GAME = ReferentialConfig(n_attributes=3, n_values=5, n_candidates=3, max_len=3, vocab_size=8)
CHANCE = 1 / 3
# Seeds 0 / 1 / 2 reached REINFORCE 0.85 / 0.79 / 0.92 and Gumbel 0.90 / 0.88 / 0.85 in these steps; the test
# runs seed 0 and asks for more than twice chance.
THRESHOLD = 0.7
STEPS = {"reinforce": 1500, "gumbel": 500}


def train(method, seed=0, steps=None):
    torch.set_num_threads(1)
    game = ReferentialGame(GAME, seed=seed)
    agents = Signalling(game, SignallingConfig(method=method, hidden=64, embed=32, batch_size=256, lr=2e-3), seed=seed)
    for _ in range(steps if steps is not None else STEPS[method]):
        agents.train_step()
    return game, agents


@pytest.mark.parametrize("method", ["reinforce", "gumbel"])
def test_heldout_accuracy_far_above_chance(method):
    game, agents = train(method)
    heldout = game.eval_batch("heldout", repeats=20, seed=1)
    accuracy = agents.evaluate(heldout)["accuracy"]
    assert accuracy >= THRESHOLD > 2 * CHANCE, f"{method}: held-out accuracy {accuracy:.3f} < {THRESHOLD}"
    # the listener relies on the message: with each message swapped for another game's, accuracy falls
    played = agents.evaluate(heldout)
    swapped = played["messages"][np.random.default_rng(0).permutation(len(played["messages"]))]
    ablated = game.reward(heldout, agents.listener_probs(heldout, swapped).argmax(-1)).mean()
    assert ablated < accuracy - 0.2


def test_same_seed_same_agents_and_state_dict_round_trip():
    game_a, a = train("reinforce", seed=3, steps=20)
    _, b = train("reinforce", seed=3, steps=20)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    fresh = Signalling(game_a, a.config, seed=99)
    fresh.load_state_dict(a.state_dict())
    batch = game_a.eval_batch("train", seed=0)
    assert (fresh.messages(game_a.objects) == a.messages(game_a.objects)).all()
    assert np.allclose(
        fresh.listener_probs(batch, a.messages(batch.targets)), a.listener_probs(batch, a.messages(batch.targets))
    )


def test_config_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        SignallingConfig(method="ppo")
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        SignallingConfig(batch_size=1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SignallingConfig(temperature=0.0)


@pytest.mark.parametrize("method", ["reinforce", "gumbel"])
def test_end_of_message_games_train_and_read_messages_up_to_the_end(method):
    game = ReferentialGame(
        ReferentialConfig(n_attributes=3, n_values=4, n_candidates=3, max_len=4, vocab_size=6, eos=True), seed=0
    )
    agents = Signalling(game, SignallingConfig(method=method, hidden=32, embed=16, batch_size=64), seed=0)
    for _ in range(5):
        out = agents.train_step()
    assert np.isfinite(out["loss"]) and 1.0 <= out["message_length"] <= 4.0
    batch = game.eval_batch("train", seed=0)
    msgs = agents.messages(batch.targets)
    assert msgs.shape == (len(batch.targets), 4) and msgs.min() >= 0 and msgs.max() < 6
    # symbols after the first 0 are not part of a message: changing them leaves the listener's choice unchanged
    ended = np.array([[2, 0, 1, 1]] * len(msgs)), np.array([[2, 0, 5, 3]] * len(msgs))
    assert np.allclose(agents.listener_probs(batch, ended[0]), agents.listener_probs(batch, ended[1]))
    other = np.array([[3, 0, 1, 1]] * len(msgs))  # a different symbol before the end does change it
    assert not np.allclose(agents.listener_probs(batch, ended[0]), agents.listener_probs(batch, other))
