"""The replay buffers: vectorised inserts, the ring, n-step targets by hand, truncation vs termination, episodes."""

import io

import numpy as np
import pytest
import torch

from marlkit.data.replay import (
    EpisodeBatch,
    EpisodeReplay,
    GroupTransitions,
    TransitionBatch,
    TransitionReplay,
    first_step_returns,
    n_step_returns,
)
from marlkit.data.rollout import LOCAL_SOURCE, Rollout


def make_rollout(T, E, n=2, start=0, rewards=None, terminated=None, truncated=None, masks=False, state=False):
    """A rollout whose obs carry their global step number ``start + t`` (feature 0) and copy (feature 1); next_obs
    carry ``start + t + 0.5`` so a sample tells which step it came from and which next_obs it bootstraps from."""
    t = (start + np.arange(T, dtype=np.float32))[:, None]
    e = np.arange(E, dtype=np.float32)[None, :]
    obs = np.stack(np.broadcast_arrays(t, e), -1)[:, :, None].repeat(n, 2).astype(np.float32)  # (T, E, n, 2)
    next_obs = obs.copy()
    next_obs[..., 0] += 0.5
    zeros = np.zeros((T, E, n), bool)
    r = np.zeros((T, E, n), np.float32) if rewards is None else np.asarray(rewards, np.float32)
    term = zeros if terminated is None else np.asarray(terminated, bool)
    trunc = zeros if truncated is None else np.asarray(truncated, bool)
    actions = np.zeros((T, E, n), np.int64) + (start + np.arange(T))[:, None, None] % 3
    mask = None
    if masks:  # at step s only action s % 3 is allowed
        m = np.zeros((T, E, n, 3), bool)
        m[np.arange(T), :, :, (start + np.arange(T)) % 3] = True
        mask = {"g": torch.from_numpy(m)}
    st = torch.from_numpy(obs[:, :, 0].copy()) if state else None
    nst = torch.from_numpy(next_obs[:, :, 0].copy()) if state else None
    f = torch.from_numpy
    return Rollout(
        {"g": f(obs)},
        {"g": f(actions)},
        {"g": f(r)},
        {"g": f(term)},
        {"g": f(trunc)},
        {"g": f(next_obs)},
        {"g": f(np.ones((T, E, n), bool))},
        mask,
        st,
        nst,
        {"g": {}},
    )


def per_step(values, T, E=1, n=2):
    """``(T,)`` values broadcast to ``(T, E, n)``."""
    return np.broadcast_to(np.asarray(values)[:, None, None], (T, E, n)).copy()


def test_insert_is_one_write_per_array_and_keeps_layout():
    buf = TransitionReplay(capacity=30)
    buf.insert(make_rollout(4, 3, state=True))
    stream = buf.streams[LOCAL_SOURCE]
    assert stream.size == 4 and stream.pos == 4 and len(buf) == 3 * 3  # the newest row waits for its successor
    obs = stream.storage.groups["g"]["obs"]
    assert obs.shape == (10, 3, 2, 2)  # 30 transitions: 10 rows of 3 copies
    np.testing.assert_array_equal(obs[:4, :, 0, 0], np.arange(4)[:, None].repeat(3, 1))
    np.testing.assert_array_equal(obs[:4, :, 0, 1], np.arange(3)[None].repeat(4, 0))
    np.testing.assert_array_equal(stream.storage.state["state"][:4], obs[:4, :, 0])


def test_wrap_around_overwrites_the_oldest_rows():
    buf = TransitionReplay(capacity=10)  # 5 rows of 2 copies
    for k in range(3):
        buf.insert(make_rollout(2, 2, start=2 * k))
    stream = buf.streams[LOCAL_SOURCE]
    assert stream.size == 5 and stream.pos == 1
    obs = stream.storage.groups["g"]["obs"][:, 0, 0, 0]
    np.testing.assert_array_equal(obs, [5, 1, 2, 3, 4])  # step 0 was overwritten by step 5
    batch = buf.sample(500, np.random.default_rng(0))
    steps = batch.groups["g"].obs[:, 0, 0].numpy()
    assert set(steps.tolist()) == {1.0, 2.0, 3.0, 4.0}  # the oldest held rows; 5 waits for its successor
    np.testing.assert_array_equal(batch.groups["g"].next_obs[:, 0, 0].numpy(), steps + 0.5)
    saved = buf.state_dict()["streams"][LOCAL_SOURCE]
    np.testing.assert_array_equal(saved["data"]["g/obs"][:, 0, 0, 0].numpy(), [1, 2, 3, 4, 5])  # oldest first


def test_a_source_holds_at_least_a_rollout_and_its_window_whatever_the_capacity():
    buf = TransitionReplay(capacity=3, n_step=2)
    buf.insert(make_rollout(4, 1))
    assert buf.streams[LOCAL_SOURCE].rows == 4 + 2 + 1 and len(buf) == 2
    buf.insert(make_rollout(6, 1, start=4))  # a longer rollout grows the ring, keeping what it held
    stream = buf.streams[LOCAL_SOURCE]
    assert stream.rows == 6 + 2 + 1 and stream.size == 9
    np.testing.assert_array_equal(stream.storage.groups["g"]["obs"][stream.oldest_first(), 0, 0, 0], np.arange(1, 10))


def test_sampling_an_empty_replay_says_so():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="no complete n-step transition"):
        TransitionReplay(capacity=4).sample(2, rng)
    with pytest.raises(ValueError, match="no complete episode"):
        EpisodeReplay(capacity=4, max_len=3).sample(2, rng)


@pytest.mark.parametrize("make", [lambda: TransitionReplay(capacity=8), lambda: EpisodeReplay(capacity=4, max_len=3)])
def test_a_rollout_without_the_state_the_replay_stores_is_an_error(make):
    buf = make()
    buf.insert(make_rollout(2, 1, state=True))
    with pytest.raises(ValueError, match="stores the global state, but the rollout has none"):
        buf.insert(make_rollout(2, 1, state=False))


def test_termination_stops_bootstrapping_truncation_does_not():
    """Step 1 terminates, step 3 is truncated by a time limit: both end episodes, only the first is terminal."""
    T, gamma = 6, 0.9
    term = per_step([0, 1, 0, 0, 0, 0], T).astype(bool)
    trunc = per_step([0, 0, 0, 1, 0, 0], T).astype(bool)
    buf = TransitionReplay(capacity=10, n_step=1, gamma=gamma)
    buf.insert(make_rollout(T, 1, rewards=per_step(np.arange(T) + 1.0, T), terminated=term, truncated=trunc))
    batch = buf.sample(400, np.random.default_rng(1)).groups["g"]
    step = batch.obs[:, 0, 0].numpy().astype(int)
    assert set(step.tolist()) == {0, 1, 2, 3, 4}
    expected_discount = np.where(step == 1, 0.0, gamma)
    np.testing.assert_allclose(batch.discount[:, 0].numpy(), expected_discount, rtol=1e-6)
    np.testing.assert_allclose(batch.returns[:, 0].numpy(), step + 1.0)
    np.testing.assert_array_equal(batch.next_obs[:, 0, 0].numpy(), step + 0.5)  # the final obs at step 3


def test_n_step_targets_by_hand():
    """n = 3, γ = 0.5, rewards 1..8; step 2 terminates, step 5 is truncated.

    t=0: 1 + .5·2 + .25·3 = 2.75, window ends at the termination at 2 -> discount 0, next_obs of step 2
    t=1: 2 + .5·3 = 3.5, discount 0;  t=2: 3, discount 0
    t=3: 4 + .5·5 + .25·6 = 8.0, ends at the truncation at 5 -> discount .5³ = .125, next_obs of step 5
    t=4: 5 + .5·6 = 8.0, discount .25, next_obs of step 5;  t=5: 6, discount .5, next_obs of step 5
    t=6 and t=7 wait for steps after them (the window needs n rows and a successor).
    """
    T = 8
    rewards = per_step(np.arange(T) + 1.0, T)
    term = per_step([0, 0, 1, 0, 0, 0, 0, 0], T).astype(bool)
    trunc = per_step([0, 0, 0, 0, 0, 1, 0, 0], T).astype(bool)
    buf = TransitionReplay(capacity=20, n_step=3, gamma=0.5)
    buf.insert(make_rollout(T, 1, rewards=rewards, terminated=term, truncated=trunc))
    batch = buf.sample(600, np.random.default_rng(2)).groups["g"]
    step = batch.obs[:, 0, 0].numpy().astype(int)
    assert set(step.tolist()) == {0, 1, 2, 3, 4}  # t=5 needs rows 5..8 held: not yet
    table = {0: (2.75, 0.0, 2), 1: (3.5, 0.0, 2), 2: (3.0, 0.0, 2), 3: (8.0, 0.125, 5), 4: (8.0, 0.25, 5)}
    exp = np.array([table[s] for s in step])
    np.testing.assert_allclose(batch.returns[:, 0].numpy(), exp[:, 0])
    np.testing.assert_allclose(batch.discount[:, 0].numpy(), exp[:, 1])
    np.testing.assert_array_equal(batch.next_obs[:, 0, 0].numpy(), exp[:, 2] + 0.5)

    # the helper directly, with the window running off the end of the given steps at t=5..7
    ret, disc, last = n_step_returns(rewards[None, :, 0], term[None, :, 0], (term | trunc)[None, :, 0, 0], 0.5, 3)
    np.testing.assert_allclose(ret[0, :, 0], [2.75, 3.5, 3, 8, 8, 6, 7 + 4, 8])
    np.testing.assert_allclose(disc[0, :, 0], [0, 0, 0, 0.125, 0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(last[0], [2, 2, 2, 5, 5, 5, 7, 7])


@pytest.mark.parametrize("n", [1, 3, 20])
def test_first_step_returns_are_the_first_column_of_n_step_returns(n):
    """What sampling computes per window (its first step only) against the all-steps helper, on windows with
    episode ends, per-agent terminations and a window that runs to its last step."""
    rng = np.random.default_rng(n)
    B, agents = 50, 3
    rewards = rng.normal(size=(B, n, agents)).astype(np.float32)
    terminated = rng.random((B, n, agents)) < 0.3 / n  # about half the windows end early
    ends = terminated.any(-1) | (rng.random((B, n)) < 0.3 / n)
    ret, disc, last = first_step_returns(rewards, terminated, ends, 0.9)
    all_ret, all_disc, all_last = n_step_returns(rewards, terminated, ends, 0.9, n)
    np.testing.assert_array_equal(last, all_last[:, 0])
    np.testing.assert_array_equal(ret, all_ret[:, 0])
    np.testing.assert_array_equal(disc, all_disc[:, 0])
    if n > 1:
        assert 0 < (last == n - 1).mean() < 1  # some windows run to their end, some stop at an episode end


def test_n_step_per_agent_termination_keeps_the_teams_window():
    """Agent 1 dies at step 0 (terminated from then on, zero reward); the copy goes on, so agent 0 bootstraps
    from step 1 with γ² and agent 1 does not bootstrap at all."""
    rewards = np.array([[[1.0, 5.0]], [[1.0, 0.0]], [[1.0, 0.0]]])
    term = np.array([[[False, True]], [[False, True]], [[False, True]]])
    buf = TransitionReplay(capacity=5, n_step=2, gamma=0.5)
    buf.insert(make_rollout(3, 1, rewards=rewards, terminated=term))
    b = buf.sample(1, np.random.default_rng(0)).groups["g"]
    assert b.obs[0, 0, 0] == 0
    np.testing.assert_allclose(b.returns[0].numpy(), [1.5, 5.0])
    np.testing.assert_allclose(b.discount[0].numpy(), [0.25, 0.0])


def test_next_action_mask_without_a_stored_one_is_the_next_steps_and_all_true_at_an_episode_end():
    T = 5
    trunc = per_step([0, 1, 0, 0, 0], T).astype(bool)
    buf = TransitionReplay(capacity=10)
    buf.insert(make_rollout(T, 1, truncated=trunc, masks=True))
    b = buf.sample(300, np.random.default_rng(0)).groups["g"]
    step = b.obs[:, 0, 0].numpy().astype(int)
    for s, mask, next_mask in zip(step, b.mask[:, 0].numpy(), b.next_mask[:, 0].numpy()):
        assert mask.tolist() == [a == s % 3 for a in range(3)]
        assert next_mask.tolist() == ([True] * 3 if s == 1 else [a == (s + 1) % 3 for a in range(3)])


def with_next_masks(rollout, final_action):
    """The rollout with ``next_action_mask``: the next step's mask inside an episode, and at an episode's end only
    ``final_action`` (what the collector stores from the env's ``final_action_mask``)."""
    m = rollout.action_mask["g"].numpy()
    nxt = np.concatenate([m[1:], m[:1]])  # the next row's mask (the last row wraps: overwritten below if it ends)
    ends = (rollout.terminated["g"] | rollout.truncated["g"]).numpy()
    nxt[ends] = np.eye(3, dtype=bool)[final_action]
    return rollout._replace(next_action_mask={"g": torch.from_numpy(nxt)})


@pytest.mark.parametrize("episodes", [False, True])
def test_stored_next_action_mask_is_used_at_a_truncation(episodes):
    """The bootstrapped max after a truncation ranges over the final observation's allowed actions (the stored
    ``next_action_mask``), not over every action: invalid actions' Q-values are never trained."""
    T = 6
    trunc = per_step([0, 1, 0, 0, 0, 1], T).astype(bool)
    rollout = with_next_masks(make_rollout(T, 1, truncated=trunc, masks=True), final_action=2)
    if episodes:
        buf = EpisodeReplay(capacity=4, max_len=T)
        buf.insert(rollout)
        episodes = buf.sample(8, np.random.default_rng(0))
        filled = episodes.filled.numpy()
        b = episodes.groups["g"]
        step = b.obs[..., 0, 0].numpy()[filled].astype(int)
        next_masks = b.next_mask[..., 0, :].numpy()[filled]
    else:
        buf = TransitionReplay(capacity=10)
        buf.insert(rollout)
        b = buf.sample(300, np.random.default_rng(0)).groups["g"]
        step, next_masks = b.obs[:, 0, 0].numpy().astype(int), b.next_mask[:, 0].numpy()
    assert set(step.tolist()) >= {1, 2}
    for s, next_mask in zip(step, next_masks):
        assert next_mask.tolist() == (
            [a == 2 for a in range(3)] if s in (1, 5) else [a == (s + 1) % 3 for a in range(3)]
        )


def test_cut_ends_the_newest_row_without_terminating_it():
    buf = TransitionReplay(capacity=10, n_step=3, gamma=0.5)
    buf.insert(make_rollout(2, 1, rewards=per_step([1.0, 1.0], 2)))
    buf.cut()
    buf.insert(make_rollout(3, 1, start=10, rewards=per_step([100.0] * 3, 3)))
    b = buf.sample(100, np.random.default_rng(0)).groups["g"]
    first = b.obs[:, 0, 0].numpy() == 0
    assert first.any()
    np.testing.assert_allclose(b.returns[first, 0].numpy(), 1.5)  # does not run into the other episode
    np.testing.assert_allclose(b.discount[first, 0].numpy(), 0.25)
    np.testing.assert_array_equal(b.next_obs[first, 0, 0].numpy(), 1.5)


def _roundtrip(state):
    f = io.BytesIO()
    torch.save(state, f)
    f.seek(0)
    return torch.load(f, weights_only=True)


def test_transition_checkpoint_round_trip():
    buf = TransitionReplay(capacity=14, n_step=2, gamma=0.9)  # 7 rows of 2 copies
    for k in range(5):  # wraps around
        buf.insert(make_rollout(3, 2, start=3 * k, rewards=per_step(np.arange(3.0) + k, 3, 2), masks=True, state=True))
    restored = TransitionReplay(capacity=14, n_step=2, gamma=0.9)
    restored.load_state_dict(_roundtrip(buf.state_dict()))
    a, b = buf.sample(64, np.random.default_rng(5)), restored.sample(64, np.random.default_rng(5))
    for key in ("state", "next_state"):
        torch.testing.assert_close(getattr(a, key), getattr(b, key))
    for key in a.groups["g"]._fields:
        torch.testing.assert_close(getattr(a.groups["g"], key), getattr(b.groups["g"], key))
    # and both go on the same way
    buf.insert(make_rollout(3, 2, start=50, masks=True, state=True))
    restored.insert(make_rollout(3, 2, start=50, masks=True, state=True))
    torch.testing.assert_close(
        buf.sample(64, np.random.default_rng(6)).groups["g"].obs,
        restored.sample(64, np.random.default_rng(6)).groups["g"].obs,
    )


def test_episodes_assembled_across_rollouts_and_padded():
    """One copy with episodes of lengths 3 (terminated), 4 (truncated) and a piece of a too-long one; max_len 4.
    Copy 1 runs one long episode, stored in pieces of 4."""
    T1, T2 = 4, 5
    term = np.zeros((T1 + T2, 2, 2), bool)
    trunc = np.zeros((T1 + T2, 2, 2), bool)
    term[2, 0] = True  # copy 0: steps 0-2 terminate
    trunc[6, 0] = True  # copy 0: steps 3-6 truncated
    rewards = np.broadcast_to(np.arange(T1 + T2, dtype=np.float32)[:, None, None], (T1 + T2, 2, 2)).copy()
    buf = EpisodeReplay(capacity=10, max_len=4, n_step=1, gamma=0.5)
    buf.insert(make_rollout(T1, 2, rewards=rewards[:T1], terminated=term[:T1], truncated=trunc[:T1], masks=True))
    assert len(buf) == 2  # copy 0's first episode and copy 1's first piece of 4
    buf.insert(
        make_rollout(T2, 2, start=T1, rewards=rewards[T1:], terminated=term[T1:], truncated=trunc[T1:], masks=True)
    )
    assert len(buf) == 4 and buf.cursor[LOCAL_SOURCE].tolist() == [2, 1]  # copy 0: steps 7, 8; copy 1: step 8
    stored = buf.slots.groups["g"]["obs"][:4, :, 0, :]  # (slot, t, [step, copy])
    filled = buf.filled[:4]
    lengths = filled.sum(1).tolist()
    firsts = stored[:, 0].tolist()
    episodes = sorted(zip(firsts, lengths))
    assert episodes == [([0.0, 0.0], 3), ([0.0, 1.0], 4), ([3.0, 0.0], 4), ([4.0, 1.0], 4)]
    i = firsts.index([0.0, 0.0])
    np.testing.assert_array_equal(stored[i, :, 0], [0, 1, 2, 0])  # padded with zeros
    assert filled[i].tolist() == [True, True, True, False]

    batch = buf.sample(200, np.random.default_rng(0))
    g = batch.groups["g"]
    first = g.obs[:, 0, 0, 0].numpy()
    copy = g.obs[:, 0, 0, 1].numpy()
    short = (first == 0) & (copy == 0)
    assert short.any()
    np.testing.assert_allclose(g.returns[short][0, :, 0].numpy(), [0, 1, 2, 0])
    np.testing.assert_allclose(g.discount[short][0, :, 0].numpy(), [0.5, 0.5, 0, 0.5])  # step 2 terminal
    assert batch.filled[short][0].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(g.next_mask[short][0, 2, 0].numpy(), [True] * 3)  # all true at the end
    np.testing.assert_array_equal(g.next_mask[short][0, 0, 0].numpy(), g.mask[short][0, 1, 0].numpy())
    piece = (first == 0) & (copy == 1)  # a piece of a longer episode: its end is bootstrapped
    np.testing.assert_allclose(g.discount[piece][0, :, 0].numpy(), [0.5] * 4)


def test_episode_n_step_and_checkpoint_round_trip():
    T = 6
    term = np.zeros((T, 1, 2), bool)
    term[4] = True  # one episode of 5 steps, rewards 0..4
    buf = EpisodeReplay(capacity=3, max_len=6, n_step=2, gamma=0.5)
    buf.insert(make_rollout(T, 1, rewards=per_step(np.arange(T, dtype=np.float32), T), terminated=term, state=True))
    b = buf.sample(1, np.random.default_rng(0))
    np.testing.assert_allclose(b.groups["g"].returns[0, :5, 0].numpy(), [0.5, 2.0, 3.5, 5.0, 4.0])
    np.testing.assert_allclose(b.groups["g"].discount[0, :5, 0].numpy(), [0.25, 0.25, 0.25, 0.0, 0.0])
    assert b.last[0, :5].tolist() == [1, 2, 3, 4, 4]

    restored = EpisodeReplay(capacity=3, max_len=6, n_step=2, gamma=0.5)
    restored.load_state_dict(_roundtrip(buf.state_dict()))
    a, c = buf.sample(8, np.random.default_rng(3)), restored.sample(8, np.random.default_rng(3))
    for key in ("filled", "last", "state", "next_state"):
        torch.testing.assert_close(getattr(a, key), getattr(c, key))
    for key in a.groups["g"]._fields:
        torch.testing.assert_close(getattr(a.groups["g"], key), getattr(c.groups["g"], key))
    assert buf.cursor[LOCAL_SOURCE].tolist() == [1] and not restored.cursor  # the episode in progress is not saved


# ------------------------------------------------------------------------------------------------ several sources
def reference_targets(rewards, terminated, truncated, gamma, n):
    """Per step of one copy's steps ``(T,)``: (n-step return, discount, index of the step bootstrapped from), by
    walking each window step by step."""
    out = []
    for t in range(len(rewards)):
        ret, u = 0.0, t
        for k in range(n):
            u = t + k
            ret += gamma**k * rewards[u]
            if terminated[u] or truncated[u] or u == len(rewards) - 1:
                break
        out.append((ret, 0.0 if terminated[u] else gamma ** (u - t + 1), u))
    return out


def source_rollouts(T, E, count, start, rewards, terminated, truncated, source):
    """``count`` consecutive rollouts of ``T`` steps of one source from per-step ``(count * T, E)`` arrays."""
    out = []
    for k in range(count):
        s = slice(k * T, (k + 1) * T)
        r = make_rollout(
            T,
            E,
            start=start + k * T,
            rewards=np.repeat(rewards[s, :, None], 2, 2),
            terminated=np.repeat(terminated[s, :, None], 2, 2),
            truncated=np.repeat(truncated[s, :, None], 2, 2),
            state=True,
        )
        out.append(r._replace(source=source))
    return out


def two_sources():
    """Source "a": 2 copies, 2 rollouts of 4 steps (steps 0-7); copy 0's first episode terminates at step 5, copy
    1's is truncated at step 6, both crossing the boundary at step 4. Source "b": 1 copy, 2 rollouts of 3 steps
    (steps 100-105), an episode truncated at step 104 after crossing the boundary at 103, the next terminated at 105.
    Rewards tell the step and copy apart; the inserts interleave the sources."""
    a_r = np.arange(8.0)[:, None] + np.array([[1.0, 10.0]])
    a_term, a_trunc = np.zeros((8, 2), bool), np.zeros((8, 2), bool)
    a_term[5, 0], a_trunc[6, 1] = True, True
    b_r = 100.0 + np.arange(6.0)[:, None]
    b_term, b_trunc = np.zeros((6, 1), bool), np.zeros((6, 1), bool)
    b_trunc[4, 0], b_term[5, 0] = True, True
    a = source_rollouts(4, 2, 2, 0, a_r, a_term, a_trunc, "a")
    b = source_rollouts(3, 1, 2, 100, b_r, b_term, b_trunc, "b")
    return [a[0], b[0], a[1], b[1]], {"a": (0, a_r, a_term, a_trunc), "b": (100, b_r, b_term, b_trunc)}


def test_two_sources_of_different_copy_counts_give_the_n_step_targets_of_their_own_steps():
    gamma, n = 0.5, 3
    rollouts, truth = two_sources()
    buf = TransitionReplay(capacity=1000, n_step=n, gamma=gamma)
    for r in rollouts:
        buf.insert(r)
    assert {k: s.copies for k, s in buf.streams.items()} == {"a": 2, "b": 1}
    assert len(buf) == (8 - n) * 2 + (6 - n) * 1  # per source, the newest n rows wait for their successors
    batch = buf.sample(4000, np.random.default_rng(0))
    g = batch.groups["g"]
    step, copy = g.obs[:, 0, 0].numpy().astype(int), g.obs[:, 0, 1].numpy().astype(int)
    seen = {}
    for source, (start, rewards, term, trunc) in truth.items():
        mine = (step >= 100) == (start == 100)
        for e in range(rewards.shape[1]):
            table = reference_targets(rewards[:, e], term[:, e], trunc[:, e], gamma, n)
            at = mine & (copy == e)
            seen[source, e] = sorted(set((step[at] - start).tolist()))
            exp = np.array([table[t] for t in step[at] - start])
            np.testing.assert_allclose(g.returns[at].numpy(), np.repeat(exp[:, :1], 2, 1))
            np.testing.assert_allclose(g.discount[at].numpy(), np.repeat(exp[:, 1:2], 2, 1))
            np.testing.assert_array_equal(g.next_obs[at, 0, 0].numpy(), start + exp[:, 2] + 0.5)
            np.testing.assert_array_equal(batch.next_state[at, 0].numpy(), start + exp[:, 2] + 0.5)
            np.testing.assert_array_equal(batch.state[at, 0].numpy(), step[at])
    assert seen == {("a", 0): [0, 1, 2, 3, 4], ("a", 1): [0, 1, 2, 3, 4], ("b", 0): [0, 1, 2]}
    # the windows that cross a rollout boundary read the same source's next rollout, not what came in between
    assert reference_targets(truth["a"][1][:, 0], truth["a"][2][:, 0], truth["a"][3][:, 0], gamma, n)[3] == (
        4 + 0.5 * 5 + 0.25 * 6,
        0.0,
        5,
    )  # terminated at step 5
    assert reference_targets(truth["b"][1][:, 0], truth["b"][2][:, 0], truth["b"][3][:, 0], gamma, n)[2] == (
        102 + 0.5 * 103 + 0.25 * 104,
        0.125,
        4,
    )  # truncated at step 104: bootstrapped
    counts = np.unique(np.stack([step, copy], 1), axis=0, return_counts=True)[1]
    assert len(counts) == 13 and counts.min() > 4000 / 13 * 0.7 and counts.max() < 4000 / 13 * 1.3  # uniform


def test_sampled_batches_are_typed_with_the_documented_shapes():
    B = 6
    buf = TransitionReplay(capacity=40, n_step=2)
    buf.insert(make_rollout(5, 3, masks=True, state=True))
    batch = buf.sample(B, np.random.default_rng(0))
    assert isinstance(batch, TransitionBatch) and set(batch.groups) == {"g"}
    g = batch.groups["g"]
    assert isinstance(g, GroupTransitions)
    expected = {
        "obs": ((B, 2, 2), torch.float32),
        "actions": ((B, 2), torch.int64),
        "returns": ((B, 2), torch.float32),
        "discount": ((B, 2), torch.float32),
        "next_obs": ((B, 2, 2), torch.float32),
        "active": ((B, 2), torch.bool),
        "mask": ((B, 2, 3), torch.bool),
        "next_mask": ((B, 2, 3), torch.bool),
    }
    assert {k: (tuple(getattr(g, k).shape), getattr(g, k).dtype) for k in g._fields} == expected
    assert batch.state.shape == batch.next_state.shape == (B, 2)

    plain = TransitionReplay(capacity=40)
    plain.insert(make_rollout(5, 3))
    b = plain.sample(B, np.random.default_rng(0))
    assert b.groups["g"].mask is None and b.groups["g"].next_mask is None and b.state is None and b.next_state is None

    L = 4
    episodes = EpisodeReplay(capacity=4, max_len=L)
    episodes.insert(make_rollout(L, 2, masks=True, state=True))
    e = episodes.sample(B, np.random.default_rng(0))
    assert isinstance(e, EpisodeBatch) and isinstance(e.groups["g"], GroupTransitions)
    shapes = {k: (tuple(getattr(e.groups["g"], k).shape), getattr(e.groups["g"], k).dtype) for k in g._fields}
    assert shapes == {k: ((B, L, *shape[1:]), dtype) for k, (shape, dtype) in expected.items()}
    assert (e.filled.shape, e.filled.dtype, e.last.shape, e.last.dtype) == ((B, L), torch.bool, (B, L), torch.int64)
    assert e.state.shape == e.next_state.shape == (B, L, 2)


def test_the_capacity_is_shared_by_the_sources_in_proportion_to_their_copies():
    buf = TransitionReplay(capacity=24)
    for k in range(4):
        buf.insert(make_rollout(4, 2, start=4 * k))  # steps 0-15 into 12 rows: 4-15 held
    a = buf.streams[LOCAL_SOURCE]
    assert (a.rows, a.size) == (12, 12)
    buf.insert(make_rollout(4, 1, start=100)._replace(source="b"))  # 3 copies in all: 8 rows each
    b = buf.streams["b"]
    assert (a.rows, a.size, b.rows, b.size) == (8, 8, 8, 4)
    np.testing.assert_array_equal(a.storage.groups["g"]["obs"][a.oldest_first(), 0, 0, 0], np.arange(8, 16))
    buf.insert(make_rollout(4, 2, start=16))  # the local source goes on after its newest rows
    np.testing.assert_array_equal(a.storage.groups["g"]["obs"][a.oldest_first(), 0, 0, 0], np.arange(12, 20))
    steps = buf.sample(500, np.random.default_rng(0)).groups["g"].obs[:, 0, 0].numpy()
    assert set(steps.tolist()) == set(range(12, 19)) | set(range(100, 103))
    # the resized ring keeps its episodes' order: a window runs down its rows as before
    b2 = TransitionReplay(capacity=24, n_step=2, gamma=0.5)
    for k in range(4):
        b2.insert(make_rollout(4, 2, start=4 * k, rewards=per_step(4 * k + np.arange(4.0), 4, 2)))
    b2.insert(make_rollout(4, 1, start=100)._replace(source="b"))
    g = b2.sample(300, np.random.default_rng(1)).groups["g"]
    local = g.obs[:, 0, 0].numpy() < 100
    s = g.obs[local, 0, 0].numpy()
    np.testing.assert_allclose(g.returns[local, 0].numpy(), s + 0.5 * (s + 1))


def test_a_source_keeps_its_copies_and_every_source_must_be_the_same_env():
    buf = TransitionReplay(capacity=100)
    buf.insert(make_rollout(3, 2))
    with pytest.raises(ValueError, match="source 'local' gave rollouts of 2 copies and now one of 3"):
        buf.insert(make_rollout(3, 3))
    with pytest.raises(
        ValueError,
        match=r"source 'other' does not fit this replay: its rollouts hold int64 items of "
        r"shape \(3,\) for 'g/actions', the replay stores int64 items of shape \(2,\)",
    ):
        buf.insert(make_rollout(3, 2, n=3)._replace(source="other"))  # 3 agents, not 2
    with pytest.raises(
        ValueError, match=r"source 'other' does not fit this replay: .* for 'next_state', the replay stores nothing"
    ):
        buf.insert(make_rollout(3, 2, state=True)._replace(source="other"))
    episodes = EpisodeReplay(capacity=4, max_len=3)
    episodes.insert(make_rollout(3, 2))
    with pytest.raises(ValueError, match="source 'local' gave rollouts of 2 copies and now one of 1"):
        episodes.insert(make_rollout(3, 1))
    with pytest.raises(ValueError, match="source 'other' does not fit this replay"):
        episodes.insert(make_rollout(3, 2, masks=True)._replace(source="other"))


def test_two_sources_round_trip_through_a_checkpoint_and_a_single_stream_state_loads_as_the_local_source():
    rollouts, _ = two_sources()
    buf = TransitionReplay(capacity=18, n_step=2, gamma=0.9)  # 6 rows of 3 copies (a: one rollout and its window)
    for r in rollouts + [r._replace(obs={"g": r.obs["g"] + 20}) for r in rollouts]:
        buf.insert(r)
    restored = TransitionReplay(capacity=18, n_step=2, gamma=0.9)
    restored.load_state_dict(_roundtrip(buf.state_dict()))
    assert {k: (s.rows, s.size) for k, s in restored.streams.items()} == {"a": (7, 7), "b": (6, 6)}  # a: 4 + 2 + 1
    for x, y in ((buf, restored), (restored, buf)):
        a, b = x.sample(64, np.random.default_rng(5)), y.sample(64, np.random.default_rng(5))
        torch.testing.assert_close(a.state, b.state)
        for key in a.groups["g"]._fields:
            torch.testing.assert_close(getattr(a.groups["g"], key), getattr(b.groups["g"], key))

    one = TransitionReplay(capacity=20, n_step=2, gamma=0.9)
    for k in range(3):
        one.insert(make_rollout(3, 2, start=3 * k, rewards=per_step(np.arange(3.0) + k, 3, 2), state=True))
    single = {k: v for k, v in one.state_dict()["streams"][LOCAL_SOURCE].items() if k in ("size", "data")}
    loaded = TransitionReplay(capacity=20, n_step=2, gamma=0.9)
    loaded.load_state_dict(_roundtrip(single))
    assert loaded.streams[LOCAL_SOURCE].rows == 10 and len(loaded) == len(one)
    a, b = one.sample(32, np.random.default_rng(1)), loaded.sample(32, np.random.default_rng(1))
    for key in a.groups["g"]._fields:
        torch.testing.assert_close(getattr(a.groups["g"], key), getattr(b.groups["g"], key))


def test_episodes_of_two_sources_are_assembled_within_their_own_copies():
    """Source "a" (2 copies) and "b" (1 copy) interleaved; each episode crosses a rollout boundary."""
    rollouts, truth = two_sources()
    buf = EpisodeReplay(capacity=10, max_len=8, n_step=2, gamma=0.5)
    for r in rollouts:
        buf.insert(r)
    assert len(buf) == 4  # a: copy 0's (steps 0-5), copy 1's (0-6); b: steps 100-104 and 105
    assert buf.cursor["a"].tolist() == [2, 1] and buf.cursor["b"].tolist() == [0]
    stored = buf.slots.groups["g"]["obs"][:4, :, 0, :]
    episodes = sorted((tuple(stored[i, buf.filled[i], 0].tolist()), int(stored[i, 0, 1])) for i in range(4))
    assert episodes == [
        ((0, 1, 2, 3, 4, 5), 0),
        ((0, 1, 2, 3, 4, 5, 6), 1),
        ((100, 101, 102, 103, 104), 0),
        ((105,), 0),
    ]
    b = buf.sample(50, np.random.default_rng(0))
    g = b.groups["g"]
    first = g.obs[:, 0, 0, 0].numpy()
    long_b = first == 100
    assert long_b.any()
    np.testing.assert_allclose(g.returns[long_b][0, :5, 0].numpy(), [100 + 50.5, 101 + 51, 102 + 51.5, 103 + 52, 104])
    np.testing.assert_allclose(g.discount[long_b][0, :5, 0].numpy(), [0.25] * 4 + [0.5])  # truncated: bootstrapped
    short_b = first == 105
    np.testing.assert_allclose(g.discount[short_b][0, :1, 0].numpy(), [0.0])  # terminated


@pytest.mark.parametrize("recurrent", [False, True])
def test_a_learner_trains_from_a_replay_fed_by_two_sources_of_different_copy_counts(recurrent):
    import marlkit
    from marlkit.algorithms.dqn import DQN, DQNConfig
    from marlkit.collect import Collector

    cfg = DQNConfig(
        rollout_steps=4,
        warmup_steps=0,
        batch_size=16,
        batch_episodes=4,
        buffer_size=300,
        recurrent=recurrent,
        episode_limit=8,
        n_step=2,
    )
    env = marlkit.make("spread-v0", num_envs=4, seed=0, max_steps=8)
    algo = DQN(env, cfg, seed=0)
    other_env = marlkit.make("spread-v0", num_envs=2, seed=1, max_steps=8)
    local, other = Collector(env, algo, 4, seed=0), Collector(other_env, algo.policy(seed=1), 4, seed=1)
    metrics = []
    for _ in range(6):
        metrics.append(algo.update(local.collect()[0]))
        metrics.append(algo.update(other.collect()[0]._replace(source="other")))
    if recurrent:
        assert set(algo.replay.cursor) == {LOCAL_SOURCE, "other"}
        assert len(algo.replay) == 3 * 4 + 3 * 2  # 24 steps of every copy: 3 episodes of 8
    else:
        assert {k: s.copies for k, s in algo.replay.streams.items()} == {LOCAL_SOURCE: 4, "other": 2}
        assert len(algo.replay) == (24 - 2) * 4 + (24 - 2) * 2
    assert algo.grad_steps > 0 and all(np.isfinite(m["loss/td"]) for m in metrics if "loss/td" in m)
