"""from_pettingzoo across PettingZoo's families: continuous control, agents that die, many agents, communication;
envs built without a render mode; and envs whose ``state()`` breaks once an episode (or an agent) is over."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from pettingzoo import ParallelEnv

from marlkit.envs import check_env, sample_actions
from marlkit.envs.pettingzoo import from_pettingzoo, to_pettingzoo

pytestmark = pytest.mark.pettingzoo


def _factory(module: str, needs: str | None = None, **kwargs: Any) -> Callable[[], Any]:
    if needs:
        pytest.importorskip(needs)
    return functools.partial(importlib.import_module(module).parallel_env, **kwargs)


def test_readme_snippet_passes_check_env_and_says_it_does_not_render():
    from mpe2 import simple_spread_v3

    env = from_pettingzoo(lambda: simple_spread_v3.parallel_env(), num_envs=4)
    assert not env.renders
    report = check_env(env, steps=60)
    assert not report.renders and not report.render_checked and "does not render" in report.notes
    with pytest.raises(NotImplementedError, match="render_mode='rgb_array'"):
        env.render()
    # Seen back through PettingZoo, it offers no render mode it cannot honour.
    assert to_pettingzoo(from_pettingzoo(lambda: simple_spread_v3.parallel_env())).metadata["render_modes"] == []
    rendering = from_pettingzoo(lambda: simple_spread_v3.parallel_env(render_mode="rgb_array"), num_envs=2)
    assert rendering.renders and check_env(rendering, steps=30).render_checked


# family -> (factory arguments, expected groups, a check of what makes the family what it is)
FAMILIES: dict[str, tuple[dict[str, Any], dict[str, int], Callable[[Any], bool]]] = {
    "continuous-control/mpe2-spread": (
        {"module": "mpe2.simple_spread_v3", "max_cycles": 12, "continuous_actions": True},
        {"agent": 3},
        lambda env: isinstance(env.action_space("agent_0"), spaces.Box),
    ),
    "continuous-control/sisl-multiwalker": (
        {"module": "pettingzoo.sisl.multiwalker_v9", "needs": "Box2D", "max_cycles": 12},
        {"walker": 3},
        lambda env: env.action_space("walker_0") == spaces.Box(-1, 1, (4,), np.float32),
    ),
    "many-agents/mpe2-spread-12": (
        {"module": "mpe2.simple_spread_v3", "N": 12, "max_cycles": 12},
        {"agent": 12},
        lambda env: env.observation_space("agent_0").shape == (4 + 2 * 12 + 4 * 11,),
    ),
    "many-agents/sisl-pursuit": (
        {"module": "pettingzoo.sisl.pursuit_v5", "max_cycles": 12},
        {"pursuer": 8},
        lambda env: env.observation_space("pursuer_0").shape == (7, 7, 3) and env.state_space.shape == (16, 16, 3),
    ),
    "communication/mpe2-speaker-listener": (
        {"module": "mpe2.simple_speaker_listener_v4", "max_cycles": 12, "continuous_actions": True},
        {"speaker": 1, "listener": 1},
        lambda env: env.action_space("speaker_0").shape == (3,),
    ),
    "communication/mpe2-reference": (
        {"module": "mpe2.simple_reference_v3", "max_cycles": 12},
        {"agent": 2},
        lambda env: env.action_space("agent_0") == spaces.Discrete(50),
    ),  # 5 moves x 10 words
}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_passes_check_env_across_episode_ends(family):
    kwargs, groups, feature = FAMILIES[family]
    env = from_pettingzoo(_factory(**kwargs), num_envs=2)
    assert {g: len(ids) for g, ids in env.groups.items()} == groups and feature(env)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "multiwalker_v9.state\\(\\) fails once an episode is over")
        report = check_env(env, steps=30)
    assert report.episodes_ended >= 2


def test_agents_that_fall_mid_episode_with_the_observation_state():
    """Multiwalker without terminate_on_fall: a walker that falls is removed and its body destroyed while the others
    go on, and the env's own state() breaks then: an error naming state_source='observations', which works."""
    fn = _factory("pettingzoo.sisl.multiwalker_v9", "Box2D", max_cycles=100, terminate_on_fall=False)
    env = from_pettingzoo(fn, num_envs=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match=r"while its episode runs .*state_source='observations'"):
        for _ in range(100):  # random walkers fall after about 50 steps
            env.step(sample_actions(env, rng=rng))
            env.state()
    env = from_pettingzoo(fn, num_envs=2, state_source="observations")
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    fell_mid_episode, gone_before = 0, np.zeros((2, 3), bool)
    for _ in range(100):
        obs, rew, term, trunc, info = env.step(sample_actions(env, rng=rng))
        gone = ~info["active"]["walker"] & ~info["episode_done"][:, None]
        assert term["walker"][gone].all(), "a walker that fell stays terminated"
        assert not rew["walker"][gone_before].any(), "after the step it fell, a walker earns zero"
        assert not info["final_obs"]["walker"][gone_before].any(), "after the step it fell, a walker observes zero"
        fell_mid_episode += int((gone & ~gone_before).sum())
        gone_before = gone
    assert fell_mid_episode > 0
    check_env(env, steps=110, check_render=False)


def test_multiwalker_final_state_after_a_fall_is_the_last_state_read():
    """With terminate_on_fall a fall ends the episode, and multiwalker's state() raises on the finished env."""
    env = from_pettingzoo(_factory("pettingzoo.sisl.multiwalker_v9", "Box2D", max_cycles=100), num_envs=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    before = env.state()
    with pytest.warns(UserWarning, match="multiwalker_v9.state\\(\\) fails once an episode is over") as record:
        for _ in range(100):
            _, _, term, _, info = env.step(sample_actions(env, rng=rng))
            if info["episode_done"].any():
                break
            before = env.state()
    fell = info["episode_done"] & term["walker"].all(axis=1)
    assert fell.any() and len(record) == 1
    np.testing.assert_array_equal(info["final_state"][fell], before[fell])


# ---------------------------------------------------------------- a small env whose state() breaks when it is over
class Fragile(ParallelEnv):
    """Two agents; the episode ends by termination at step ``length``; ``state()`` raises once it has ended (like a
    physics env that destroys its bodies), or from step ``broken_from`` on."""

    metadata: ClassVar[dict[str, Any]] = {"name": "fragile_v0", "is_parallelizable": True}

    def __init__(self, length: int = 3, broken_from: int | None = None) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.state_space = spaces.Box(0, 100, (1,), np.float32)
        self.length, self.broken_from = length, broken_from

    def observation_space(self, agent):
        return spaces.Box(0, 100, (1,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.t, self.agents = 0, list(self.possible_agents)
        return {a: np.array([0.0], np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.t += 1
        over = self.t >= self.length
        obs = {a: np.array([self.t], np.float32) for a in self.agents}
        out = (
            obs,
            dict.fromkeys(self.agents, 1.0),
            dict.fromkeys(self.agents, over),
            dict.fromkeys(self.agents, False),
            {a: {} for a in self.agents},
        )
        if over:
            self.agents = []
        return out

    def state(self):
        if not self.agents or (self.broken_from is not None and self.t >= self.broken_from):
            raise AttributeError("'NoneType' object has no attribute 'position'")
        return np.array([10.0 * self.t], np.float32)


def test_final_state_of_a_copy_whose_state_breaks_at_the_end_is_its_last_state():
    env = from_pettingzoo(functools.partial(Fragile, length=3), num_envs=2)
    env.reset(seed=0)
    acts = {"agent": np.zeros((2, 2), np.int64)}
    env.step(acts)
    np.testing.assert_array_equal(env.state(), [[10.0], [10.0]])
    env.step(acts)  # nobody reads the state at step 2: the last one read is step 1's
    with pytest.warns(UserWarning, match="fragile_v0.state\\(\\) fails once an episode is over") as record:
        _, _, term, _, info = env.step(acts)
    assert len(record) == 1 and term["agent"].all() and info["episode_done"].all()
    np.testing.assert_array_equal(info["final_state"], [[10.0], [10.0]])
    np.testing.assert_array_equal(env.state(), [[0.0], [0.0]])  # the new episode's
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per bridge, not at every episode end
        for _ in range(2):
            env.step(acts)
            env.state()
        _, _, _, _, info = env.step(acts)
    np.testing.assert_array_equal(info["final_state"], [[20.0], [20.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(from_pettingzoo(Fragile, num_envs=2), steps=10, check_render=False)


def test_state_that_breaks_mid_episode_is_a_clear_error():
    env = from_pettingzoo(functools.partial(Fragile, length=5, broken_from=2), num_envs=1)
    env.reset(seed=0)
    env.step({"agent": np.zeros((1, 2), np.int64)})
    env.step({"agent": np.zeros((1, 2), np.int64)})
    with pytest.raises(
        RuntimeError,
        match=r"fragile_v0\.state\(\) failed on copy 0 while its episode runs "
        r"\(AttributeError: .*\); build the bridge with state_source=",
    ):
        env.state()
    env = from_pettingzoo(functools.partial(Fragile, length=5, broken_from=2), state_source="observations")
    assert env.state_space.shape == (2,)
    check_env(env, steps=12, check_render=False)


def test_state_source_is_validated():
    with pytest.raises(ValueError, match="state_source must be one of \\('auto', 'env', 'observations'\\)"):
        from_pettingzoo(Fragile, state_source="global")
    with pytest.raises(ValueError, match=r"state_source='env' needs .* use state_source='observations'"):
        from_pettingzoo(lambda: __import__("pettingzoo").make("aec", "classic/rps-v2"), state_source="env")
