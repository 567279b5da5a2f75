"""Level-based foraging: lbforaging's loading, reward, movement, mask and observation rules on hand-built states."""

import numpy as np
import pytest

import marlkit
from marlkit.envs import ActionError, check_env, sample_actions
from marlkit.envs.grid.foraging import EAST, LOAD, NONE, NORTH, SOUTH, WEST, Foraging


def scenario(states, actions, **kwargs):
    """Put ``states[k] = (agent_pos, agent_levels, food_pos, food_levels)`` in copy k and step ``actions``."""
    env = Foraging(num_envs=len(states), seed=0, **kwargs)
    env.reset()
    for k, st in enumerate(states):
        env.set_state(k, *st)
    out = env.step({"agents": np.array(actions)})
    return env, out


def test_check_env_on_variants():
    check_env(Foraging(num_envs=3, size=6, num_agents=3, num_food=3, sight=2, penalty=0.1), steps=200)
    check_env(Foraging(num_envs=2, num_agents=4, force_coop=True, observe_agent_levels=False), steps=200)


def test_loading_succeeds_exactly_when_loaders_have_the_level():
    food = ([[4, 4]], [2])
    states = [
        ([[4, 3], [4, 5]], [1, 1], *food),  # 1 + 1 = 2: collected, each gets half
        ([[4, 3], [4, 5]], [1, 1], *food),  # only one loads: 1 < 2, fails
        ([[4, 3], [3, 5]], [1, 1], *food),  # the second agent is diagonal: it cannot load, 1 < 2 fails
        ([[4, 3], [4, 5]], [2, 1], *food),  # level 2 alone is enough; the idle neighbour gets nothing
        ([[3, 4], [5, 4]], [1, 2], ([[4, 4]]), [3]),  # 1 + 2 = 3, from north and south: rewards 1/3, 2/3
        ([[3, 4], [5, 4]], [1, 1], ([[4, 4]]), [3]),  # 1 + 1 < 3: both fail
    ]
    actions = [[LOAD, LOAD], [LOAD, NONE], [LOAD, NONE], [LOAD, NONE], [LOAD, LOAD], [LOAD, LOAD]]
    env, (obs, rew, term, trunc, info) = scenario(states, actions, penalty=0.25)
    r = rew["agents"]
    np.testing.assert_allclose(r, [[0.5, 0.5], [-0.25, 0], [-0.25, 0], [1.0, 0], [1 / 3, 2 / 3], [-0.25, -0.25]])
    np.testing.assert_array_equal(info["episode_done"], [True, False, False, True, True, False])
    assert term["agents"][[0, 3, 4]].all() and not term["agents"][[1, 2, 5]].any()
    np.testing.assert_array_equal(info["episode_metrics"]["food_collected"], [1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(info["episode_metrics"]["joint_collections"], [1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(info["episode_metrics"]["load_attempts"], [2, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(info["episode_metrics"]["failed_loads"], [0, 1, 1, 0, 0, 2])


def test_load_is_masked_away_from_food_and_rejected():
    env, (_, _, _, _, info) = scenario([([[0, 0], [4, 5]], [1, 1], [[4, 4]], [1])], [[NONE, NONE]])
    mask = info["action_mask"]["agents"][0]
    assert not mask[0, LOAD] and mask[1, LOAD]
    with pytest.raises(ActionError, match="masked"):
        env.step({"agents": np.array([[LOAD, NONE]])})


def test_unnormalised_reward_is_level_times_food_level():
    _, (_, rew, *_) = scenario([([[3, 4], [5, 4]], [1, 2], [[4, 4]], [3])], [[LOAD, LOAD]], normalize_reward=False)
    np.testing.assert_allclose(rew["agents"], [[3.0, 6.0]])


def test_rewards_of_an_episode_sum_to_one_when_all_food_is_collected():
    # Two items (levels 1 and 2): the normaliser is their summed level, whoever collects them.
    env = Foraging(seed=0)
    env.reset()
    env.set_state(0, [[2, 1], [4, 5]], [1, 2], [[2, 2], [4, 4]], [1, 2])
    _, r1, *_ = env.step({"agents": np.array([[LOAD, LOAD]])})
    np.testing.assert_allclose(r1["agents"], [[1 / 3, 2 / 3]])
    # Random play on many copies: an episode that collected everything paid exactly 1 in total.
    env = marlkit.make("foraging-v0", num_envs=256, seed=1, size=5)
    _, info = env.reset()
    rng = np.random.default_rng(0)
    full = 0
    for _ in range(120):
        _, _, _, _, info = env.step(sample_actions(env, info["action_mask"], rng))
        done = info["episode_done"]
        total = info["episode_return"]["agents"][done].sum(axis=1)
        frac = info["episode_metrics"]["food_collected"][done]
        np.testing.assert_allclose(total[frac == 1.0], 1.0)
        assert (total <= 1.0 + 1e-12).all()
        full += int((frac == 1.0).sum())
    assert full > 0


def test_movement_collisions():
    env = Foraging(num_envs=6, seed=0)
    env.reset()
    food = ([[6, 6]], [1])
    starts = [
        [[2, 1], [2, 3]],  # both step into (2, 2): neither moves
        [[2, 1], [2, 2]],  # into a cell whose agent stays: fails
        [[2, 1], [2, 2]],  # follow the leader: both move
        [[2, 1], [2, 2]],  # swap: lbforaging lets agents pass through each other
        [[2, 1], [3, 1]],  # moves to different free cells: both move
        [[0, 0], [1, 0]],  # agent 1 steps into agent 0, which stays
    ]
    for k, p in enumerate(starts):
        env.set_state(k, p, [1, 1], *food)
    actions = np.array([[EAST, WEST], [EAST, NONE], [EAST, EAST], [EAST, WEST], [EAST, EAST], [NONE, NORTH]])
    _, _, _, _, info = env.step({"agents": actions})
    expected = [
        [[2, 1], [2, 3]],
        [[2, 1], [2, 2]],
        [[2, 2], [2, 3]],
        [[2, 2], [2, 1]],
        [[2, 2], [3, 2]],
        [[0, 0], [1, 0]],
    ]
    np.testing.assert_array_equal(env._agent_pos, expected)
    np.testing.assert_array_equal(info["episode_metrics"]["blocked_moves"], [2, 1, 0, 0, 0, 1])


def test_a_failed_move_blocks_the_agents_queued_behind_it():
    # 0 -> 1's cell, 1 -> 2's cell, 2 stays: 1 fails, so 0 fails too (lbforaging would stack 0 onto 1).
    env = Foraging(num_agents=3, seed=0)
    env.reset()
    env.set_state(0, [[3, 1], [3, 2], [3, 3]], [1, 1, 1], [[6, 6]], [1])
    env.step({"agents": np.array([[EAST, EAST, NONE]])})
    np.testing.assert_array_equal(env._agent_pos[0], [[3, 1], [3, 2], [3, 3]])
    # A queue whose head steps into a free cell moves as a whole.
    env.set_state(0, [[3, 1], [3, 2], [4, 2]], [1, 1, 1], [[6, 6]], [1])
    env.step({"agents": np.array([[EAST, SOUTH, WEST]])})
    np.testing.assert_array_equal(env._agent_pos[0], [[3, 2], [4, 2], [4, 1]])


def test_masks_follow_walls_and_food_not_agents():
    env = Foraging(seed=0)
    env.reset()
    env.set_state(0, [[0, 0], [0, 1]], [1, 1], [[1, 1]], [1])
    mask = env._action_mask()["agents"][0]
    #                      NONE  NORTH  SOUTH  WEST   EAST  LOAD
    np.testing.assert_array_equal(
        mask,
        [
            [True, False, True, False, True, False],  # east is agent 1: allowed
            [True, False, False, True, True, True],
        ],
    )  # south is food: masked
    env.validate_actions = False
    env.step({"agents": np.array([[NORTH, SOUTH]])})  # invalid actions become NONE, as in lbforaging
    np.testing.assert_array_equal(env._agent_pos[0], [[0, 0], [0, 1]])


def test_observation_content_and_sight():
    env = Foraging(size=8, num_agents=3, num_food=3, sight=1, seed=0)
    env.reset()
    env.set_state(0, [[4, 4], [3, 5], [6, 4]], [2, 1, 2], [[5, 4], [3, 3], [1, 6]], [3, 2, 1])
    obs = env._observe()["agents"][0]
    blank = [-1, -1, 0]
    # Agent 0 at (4, 4), window origin (3, 3): sees food (3,3) and (5,4) in row-major order, then itself and agent 1.
    np.testing.assert_array_equal(obs[0], [0, 0, 2, 2, 1, 3, *blank, 1, 1, 2, 0, 2, 1, *blank])
    # Agent 1 at (3, 5), origin (2, 4): every item is two cells away; agent 0 is seen, agent 2 is not.
    np.testing.assert_array_equal(obs[1], [*blank, *blank, *blank, 1, 1, 1, 2, 0, 2, *blank])
    # Agent 2 at (6, 4), origin (5, 3): sees food (5, 4) only, and nobody else.
    np.testing.assert_array_equal(obs[2], [0, 1, 3, *blank, *blank, 1, 1, 2, *blank, *blank])
    # Full sight: plain grid coordinates, every agent (self first, then in order).
    env = Foraging(size=8, num_agents=3, num_food=3, seed=0)
    env.reset()
    env.set_state(0, [[4, 4], [3, 5], [6, 4]], [2, 1, 2], [[5, 4], [3, 3], [1, 6]], [3, 2, 1])
    obs = env._observe()["agents"][0]
    np.testing.assert_array_equal(obs[1], [1, 6, 1, 3, 3, 2, 5, 4, 3, 3, 5, 1, 4, 4, 2, 6, 4, 2])
    np.testing.assert_array_equal(env.state()[0], [5, 4, 3, 3, 3, 2, 1, 6, 1, 4, 4, 2, 3, 5, 1, 6, 4, 2])
    # Without levels, agents are (y, x) pairs.
    env = Foraging(num_agents=2, num_food=1, observe_agent_levels=False, seed=0)
    env.reset()
    env.set_state(0, [[4, 4], [3, 5]], [2, 1], [[1, 1]], [2])
    np.testing.assert_array_equal(env._observe()["agents"][0], [[1, 1, 2, 4, 4, 3, 5], [1, 1, 2, 3, 5, 4, 4]])


def test_near_the_border_the_window_is_clipped():
    env = Foraging(size=8, num_agents=2, num_food=1, sight=2, seed=0)
    env.reset()
    env.set_state(0, [[0, 1], [2, 4]], [1, 1], [[1, 3]], [1])
    obs = env._observe()["agents"][0]
    # Agent 0's window starts at (0, 0); agent 1 at (2, 4) is three columns away, unseen (lbforaging's test would
    # show it: it accepts anything within 2 * sight of the clipped window's corner).
    np.testing.assert_array_equal(obs[0], [1, 3, 1, 0, 1, 1, -1, -1, 0])
    np.testing.assert_array_equal(obs[1], [1, 1, 1, 2, 2, 1, -1, -1, 0])


def test_spawning_follows_lbforaging():
    env = Foraging(size=8, num_agents=3, num_food=3, num_envs=500, seed=3)
    env.reset()
    fp, fl, ap, al = env._food_pos, env._food_level, env._agent_pos, env._agent_level
    assert (fl > 0).all()  # three items always fit on 8x8
    assert ((fp >= 1) & (fp <= 6)).all(), "food is never on the border"
    d = np.abs(fp[:, :, None] - fp[:, None]).sum(-1) + 100 * np.eye(3, dtype=int)
    assert (d >= 3).all(), "food items are at Manhattan distance >= 3"
    assert ((ap[:, :, None] != fp[:, None]).any(-1)).all(), "no agent on food"
    cells = ap[..., 0] * 8 + ap[..., 1]
    assert all(len(set(c)) == 3 for c in cells)
    assert ((al >= 1) & (al <= 2)).all()
    assert (fl <= al.sum(1, keepdims=True)).all()
    coop = Foraging(num_agents=3, num_food=2, force_coop=True, num_envs=200, seed=0)
    coop.reset()
    np.testing.assert_array_equal(coop._food_level, np.repeat(coop._agent_level.sum(1, keepdims=True), 2, 1))


def test_episode_ends_by_termination_or_time_limit():
    env = Foraging(num_envs=2, max_steps=3, seed=0)
    env.reset()
    env.set_state(0, [[4, 3], [0, 0]], [2, 1], [[4, 4]], [2])
    env.set_state(1, [[4, 3], [0, 0]], [1, 1], [[4, 4]], [2])
    _, _, term, trunc, info = env.step({"agents": np.array([[LOAD, NONE], [LOAD, NONE]])})
    np.testing.assert_array_equal(info["episode_done"], [True, False])
    assert term["agents"][0].all() and not trunc["agents"].any()
    for _ in range(2):
        _, _, term, trunc, info = env.step({"agents": np.zeros((2, 2), dtype=np.int64)})
    assert info["episode_done"][1] and trunc["agents"][1].all() and not term["agents"][1].any()


def test_set_state_validates():
    env = Foraging(seed=0)
    env.reset()
    with pytest.raises(ValueError, match="different cells"):
        env.set_state(0, [[1, 1], [1, 1]], [1, 1], [[4, 4]], [1])
    with pytest.raises(ValueError, match="grid"):
        env.set_state(0, [[1, 1], [8, 1]], [1, 1], [[4, 4]], [1])
    with pytest.raises(ValueError, match="food levels"):
        env.set_state(0, [[1, 1], [2, 1]], [1, 1], [[4, 4]], [9])


def test_render_shape():
    env = marlkit.make("foraging-v0", size=6)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 240, 3) and frame.dtype == np.uint8
    assert (frame != frame[0, 0]).any()


def _load_allowed_from_obs(obs, num_food):
    """LOAD is allowed where some food (level > 0) is 4-adjacent to the agent, read off the full-sight observation:
    food triples first, then the agent itself."""
    food = obs[..., : 3 * num_food].reshape(*obs.shape[:-1], num_food, 3)
    me = obs[..., 3 * num_food : 3 * num_food + 2]
    dist = np.abs(food[..., :2] - me[..., None, :]).sum(-1)
    return ((dist == 1) & (food[..., 2] > 0)).any(-1)


def test_final_action_mask_is_the_mask_of_the_final_observation():
    """At an episode's end ``info["final_action_mask"]`` is the mask of ``final_obs`` (not of the new episode's first
    observation), and the collector stores it as the rollout's ``next_action_mask``: a truncated episode's
    bootstrapped max must range over the actions allowed where it ended."""
    from marlkit.algorithms.dqn import DQN, DQNConfig
    from marlkit.collect import Collector

    env = Foraging(num_envs=8, max_steps=6, seed=0)
    obs, info = env.reset(seed=0)
    ended = 0
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, _, _, _, info = env.step(sample_actions(env, info.get("action_mask"), rng))
        done = info["episode_done"]
        if not done.any():
            assert "final_action_mask" not in info
            continue
        final = info["final_action_mask"]["agents"]
        assert np.array_equal(final[~done], info["action_mask"]["agents"][~done])
        assert np.array_equal(final[..., LOAD], _load_allowed_from_obs(info["final_obs"]["agents"], 2))
        assert np.array_equal(info["action_mask"]["agents"][..., LOAD], _load_allowed_from_obs(obs["agents"], 2))
        ended += int(done.sum())
    assert ended >= 8

    env = Foraging(num_envs=4, max_steps=6, seed=1)
    rollout, _ = Collector(env, DQN(env, DQNConfig(), seed=0), 12, seed=1).collect()  # ε = 1: random valid moves
    load_ok = _load_allowed_from_obs(rollout.next_obs["agents"].numpy(), 2)
    assert np.array_equal(rollout.next_action_mask["agents"][..., LOAD].numpy(), load_ok)
    assert rollout.truncated["agents"].any()
