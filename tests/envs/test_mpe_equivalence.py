"""The particle ports against mpe2 itself, transition for transition.

For each scenario and action type, mpe2's ``parallel_env()`` and our env (one copy) are stepped side by side with the
same random actions for 1,250 steps (50 episodes): at every episode start mpe2's state is copied into ours with the
public ``set_state``, then observations, rewards, terminations, truncations and ``state()`` must agree to 1e-5 and
episodes must end at the same step. Also: a seeded reset draws mpe2's initial state, and batched copies do not
influence each other.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpe2")
pytestmark = pytest.mark.pettingzoo

from mpe2 import simple_speaker_listener_v4, simple_spread_v3, simple_tag_v3  # noqa: E402

from marlkit.envs.particles.speaker_listener import SpeakerListener  # noqa: E402
from marlkit.envs.particles.spread import Spread  # noqa: E402
from marlkit.envs.particles.tag import Tag  # noqa: E402

SCENARIOS = {
    "spread": (simple_spread_v3, Spread),
    "tag": (simple_tag_v3, Tag),
    "speaker_listener": (simple_speaker_listener_v4, SpeakerListener),
}
ATOL = 1e-5
STEPS = 1250  # 50 episodes of 25 steps


def mpe2_state(penv) -> dict:
    """mpe2's world state in the form our ``set_state`` takes."""
    world = penv.unwrapped.world
    state = {
        "pos": np.array([e.state.p_pos for e in world.entities]),
        "vel": np.array([e.state.p_vel for e in world.entities]),
        "comm": np.array([a.state.c for a in world.agents]),
    }
    goal = getattr(world.agents[0], "_goal_b", None)
    if goal is not None:  # speaker-listener: which landmark is the goal
        state["goal"] = next(i for i, lm in enumerate(world.landmarks) if lm is goal)
    return state


def random_actions(env, rng, continuous: bool) -> dict[str, np.ndarray]:
    out = {}
    for g, ids in env.groups.items():
        space = env.group_action_space(g)
        if continuous:
            out[g] = rng.random((env.num_envs, len(ids), *space.shape), dtype=np.float32)
        else:
            out[g] = rng.integers(space.n, size=(env.num_envs, len(ids)))
    return out


def stacked(d: dict, ids) -> np.ndarray:
    return np.array([d[a] for a in ids])


def assert_close(actual, expected, where: str, atol: float = ATOL) -> None:
    """``assert_allclose(rtol=0, atol)``, with a cheap test first (it runs tens of thousands of times)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.abs(actual - expected).max(initial=0.0) <= atol:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=where)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_transitions_as_mpe2(scenario, continuous):
    module, cls = SCENARIOS[scenario]
    run_side_by_side(
        module.parallel_env(continuous_actions=continuous), cls(continuous_actions=continuous), continuous, STEPS
    )


@pytest.mark.parametrize(
    "scenario, ours, theirs",
    [
        ("spread", {"num_agents": 4, "local_ratio": 0.25}, {"N": 4, "local_ratio": 0.25}),
        ("spread", {"num_agents": 1}, {"N": 1}),
        (
            "tag",
            {"num_good": 2, "num_adversaries": 2, "num_obstacles": 1},
            {"num_good": 2, "num_adversaries": 2, "num_obstacles": 1},
        ),
        ("tag", {"num_obstacles": 0}, {"num_obstacles": 0}),
    ],
    ids=["spread-N4", "spread-N1", "tag-2v2-1", "tag-no-obstacles"],
)
def test_same_transitions_as_mpe2_other_sizes(scenario, ours, theirs):
    module, cls = SCENARIOS[scenario]
    run_side_by_side(module.parallel_env(**theirs), cls(**ours), False, 250)


def run_side_by_side(penv, env, continuous: bool, steps: int) -> None:
    assert env.agents == tuple(penv.possible_agents)
    for a in env.agents:
        assert env.observation_space(a) == penv.observation_space(a)
        assert env.action_space(a) == penv.action_space(a)
    assert env.state_space == penv.state_space

    scenario = type(env).__name__
    rng = np.random.default_rng(2024)
    mobs, _ = penv.reset(seed=5)
    env.reset(seed=99)  # a different draw: the state is copied from mpe2
    obs = env.set_state(0, **mpe2_state(penv))
    episodes, t = 0, 0
    for step in range(steps):
        if t == 0:  # a fresh episode in both: same observations and state
            for g, ids in env.groups.items():
                assert_close(obs[g][0], stacked(mobs, ids), f"first observation, episode {episodes}")
            assert_close(env.state()[0], penv.state(), f"first state, episode {episodes}")
        actions = random_actions(env, rng, continuous)
        mobs, mrew, mterm, mtrunc, _ = penv.step(
            {a: actions[g][0, i] for g, ids in env.groups.items() for i, a in enumerate(ids)}
        )
        obs, rew, term, trunc, info = env.step(actions)
        t += 1
        where = f"{scenario} step {step} (episode {episodes}, t={t})"
        for g, ids in env.groups.items():
            assert_close(info["final_obs"][g][0], stacked(mobs, ids), f"{where}: observations of {g!r}")
            assert_close(rew[g][0], stacked(mrew, ids), f"{where}: rewards of {g!r}")
            assert term[g][0].tolist() == [mterm[a] for a in ids], f"{where}: terminated"
            assert trunc[g][0].tolist() == [mtrunc[a] for a in ids], f"{where}: truncated"
        state = info["final_state"] if "final_state" in info else env.state()
        assert_close(state[0], penv.state(), f"{where}: state()")
        mpe2_done = not penv.agents
        assert bool(info["episode_done"][0]) == mpe2_done, where
        if mpe2_done:
            assert t == 25 == info["episode_length"][0]
            episodes, t = episodes + 1, 0
            mobs, _ = penv.reset()
            obs = env.set_state(0, **mpe2_state(penv))
    assert episodes == steps // 25


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_seeded_reset_draws_mpe2_initial_states(scenario):
    """With one copy, reset(seed=s) and every later autoreset draw exactly mpe2's reset(seed=s) and reset()s."""
    module, cls = SCENARIOS[scenario]
    penv, env = module.parallel_env(), cls()
    for seed in (0, 17):
        penv.reset(seed=seed)
        env.reset(seed=seed)
        for episode in range(3):
            expected, ours = mpe2_state(penv), env.get_state(0)
            for key in expected:
                np.testing.assert_array_equal(ours[key], expected[key], err_msg=f"{key}, episode {episode}")
            for _ in range(env.max_steps):
                env.step({g: np.zeros((1, len(ids)), dtype=np.int64) for g, ids in env.groups.items()})
            penv.reset()


@pytest.mark.parametrize("num_envs", [8, 64])
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_batched_copies_do_not_interact(scenario, continuous, num_envs):
    """num_envs copies stepped together = num_envs single envs from the same states with the same actions.

    64 copies also exercise the large-batch code paths (vectorised softplus, no far-pair shortcut)."""
    _, cls = SCENARIOS[scenario]
    batched = cls(num_envs=num_envs, continuous_actions=continuous)
    singles = [cls(continuous_actions=continuous) for _ in range(num_envs)]
    batched.reset(seed=0)
    for i, s in enumerate(singles):
        s.reset(seed=1000 + i)
    rng = np.random.default_rng(7)
    for step in range(60):  # two full episodes and a bit
        if step % 25 == 0:  # episode start: give copy i the state single i drew
            for i, s in enumerate(singles):
                obs_b = batched.set_state(i, **s.get_state(0))
        actions = random_actions(batched, rng, continuous)
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        outs = [s.step({g: a[i : i + 1] for g, a in actions.items()}) for i, s in enumerate(singles)]
        for g in batched.groups:  # copy i of the batch against single env i, all copies at once
            assert_close(
                info_b["final_obs"][g],
                np.concatenate([o[4]["final_obs"][g] for o in outs]),
                f"step {step}: observations of {g!r}",
                atol=1e-9,
            )
            assert_close(rew_b[g], np.concatenate([o[1][g] for o in outs]), f"step {step}: rewards of {g!r}", atol=1e-9)
            np.testing.assert_array_equal(trunc_b[g], np.concatenate([o[3][g] for o in outs]))
        np.testing.assert_array_equal(info_b["episode_done"], np.concatenate([o[4]["episode_done"] for o in outs]))
