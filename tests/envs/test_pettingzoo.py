"""PettingZoo in both directions: every registered env through PettingZoo's own tests, and PettingZoo envs (MPE,
a butterfly game, classic games, a small heterogeneous env defined here) through marlkit's checker."""

import functools
from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces

pytest.importorskip("pettingzoo")

import pettingzoo
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

import marlkit
from marlkit.envs import ActionError, check_env, sample_actions
from marlkit.envs.pettingzoo import from_pettingzoo, to_pettingzoo

pytestmark = pytest.mark.pettingzoo
# MaMuJoCo's 1000-step episodes: tests/envs/test_mujoco.py runs these checks with a short time limit
ENV_IDS = [e for e in marlkit.list_envs() if not e.startswith("mamujoco-")]


# ============================================================================================ marlkit -> PettingZoo
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_passes_pettingzoo_tests(env_id):
    parallel_api_test(to_pettingzoo(env_id), num_cycles=1000)
    parallel_seed_test(functools.partial(to_pettingzoo, env_id))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_values_live_in_their_spaces(env_id):
    env = to_pettingzoo(env_id, render_mode="rgb_array" if to_pettingzoo(env_id).metadata["render_modes"] else None)
    obs, infos = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(30):
        for a, o in obs.items():
            assert env.observation_space(a).contains(o), (a, o)
            if "action_mask" in infos[a]:
                assert infos[a]["action_mask"].dtype == np.bool_
        assert env.state_space.contains(env.state())
        if env.render_mode is not None and t == 0:
            frame = env.render()
            assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        if not env.agents:
            obs, infos = env.reset()
        masks = {a: infos[a].get("action_mask") for a in env.agents}
        obs, _, _, _, infos = env.step(
            {
                a: env.action_space(a).sample() if m is None else np.int64(rng.choice(np.flatnonzero(m)))
                for a, m in masks.items()
            }
        )


def test_last_step_shows_final_obs_and_hides_the_next_episode():
    native = marlkit.make("iterated-prisoners-dilemma-v0", seed=5)
    env = to_pettingzoo("iterated-prisoners-dilemma-v0", render_mode="rgb_array")
    n_obs, _ = native.reset(seed=5)
    obs, _ = env.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(10):
        joint = rng.integers(2, size=2)
        n_obs, n_rew, _, n_trunc, n_info = native.step({"players": joint[None]})
        obs, rew, term, trunc, _ = env.step({"player_0": joint[0], "player_1": joint[1]})
        for i, a in enumerate(env.possible_agents):
            np.testing.assert_array_equal(obs[a], n_info["final_obs"]["players"][0, i])
            assert rew[a] == n_rew["players"][0, i] and trunc[a] == n_trunc["players"][0, i] and not term[a]
    assert n_info["episode_done"][0] and all(trunc.values())
    assert not np.array_equal(obs["player_0"], n_obs["players"][0, 0]), "the next episode's observation leaked"
    assert env.agents == []
    np.testing.assert_array_equal(env.state(), n_info["final_state"][0])
    with pytest.warns(UserWarning, match="final frame cannot be drawn"):
        assert env.render() is None  # the copy already shows the next episode
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({"player_0": 0, "player_1": 0})
    env.reset()
    assert env.agents == env.possible_agents


def test_action_masks_in_infos_and_masked_actions_follow_the_env_rule():
    env = to_pettingzoo("foraging-v0")
    _, infos = env.reset(seed=0)
    agent = env.agents[0]
    mask = infos[agent]["action_mask"]
    assert mask.dtype == np.bool_ and mask.shape == (env.action_space(agent).n,)
    # Find a state where some action is masked out, then send it: not an error (PettingZoo masks are advice).
    rng = np.random.default_rng(0)
    for _ in range(200):
        masked = {a: np.flatnonzero(~infos[a]["action_mask"]) for a in env.agents}
        if any(m.size for m in masked.values()):
            break
        _, _, _, _, infos = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
        if not env.agents:
            _, infos = env.reset()
    else:
        pytest.fail("no action was ever masked out")
    actions = {a: (int(m[0]) if m.size else 0) for a, m in masked.items()}
    env.step(actions)
    assert env.env.validate_actions, "validation must be switched back on after a masked action"


def test_to_pettingzoo_rejects_bad_inputs():
    with pytest.raises(ValueError, match="num_envs=1"):
        to_pettingzoo(marlkit.make("climbing-v0", num_envs=2))
    with pytest.raises(TypeError, match="only apply when passing an env id"):
        to_pettingzoo(marlkit.make("climbing-v0"), episode_length=3)
    with pytest.raises(ValueError, match="render_mode"):
        to_pettingzoo("climbing-v0", render_mode="human")
    env = to_pettingzoo("climbing-v0")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="missing \\['player_1'\\], unknown \\['player_9'\\]"):
        env.step({"player_0": 0, "player_9": 1})
    with pytest.raises(ActionError):
        env.step({"player_0": 3, "player_1": 0})
    with pytest.raises(ActionError):
        env.step({"player_0": 1.0, "player_1": 0})
    fenv = to_pettingzoo("foraging-v0")
    fenv.reset(seed=0)
    with pytest.raises(ActionError, match="not an integer"):
        fenv.step({a: 99 for a in fenv.agents})


# ============================================================================================ PettingZoo -> marlkit
MPE = {
    "simple_spread_v3": {"agent": 3},
    "simple_tag_v3": {"adversary": 3, "agent": 1},
    "simple_speaker_listener_v4": {"speaker": 1, "listener": 1},
}


def _mpe(name, **kwargs):
    mpe2 = pytest.importorskip("mpe2")
    module = getattr(__import__(f"{mpe2.__name__}.{name}"), name)
    return lambda: module.parallel_env(**kwargs)


@pytest.mark.parametrize("name", MPE)
def test_mpe_passes_check_env(name):
    env = from_pettingzoo(_mpe(name, max_cycles=25, render_mode="rgb_array"), num_envs=2)
    assert {g: len(ids) for g, ids in env.groups.items()} == MPE[name]
    assert env.state_source == "env"
    check_env(env, steps=60)


def test_batched_copies_equal_separately_seeded_copies():
    fn = _mpe("simple_tag_v3", max_cycles=10)
    batched = from_pettingzoo(fn, num_envs=4)
    single = [from_pettingzoo(fn) for _ in range(4)]
    rng = np.random.default_rng(0)
    out = [batched.reset(seed=100)[0]]
    outs = [[e.reset(seed=100 + i)[0]] for i, e in enumerate(single)]
    for _ in range(25):  # two and a half episodes: autoresets included
        actions = sample_actions(batched, rng=rng)
        obs, rew, term, trunc, info = batched.step(actions)
        out.append((obs, rew, term, trunc, info["final_obs"], info["episode_done"]))
        for i, e in enumerate(single):
            o, r, te, tr, inf = e.step({g: a[i : i + 1] for g, a in actions.items()})
            outs[i].append((o, r, te, tr, inf["final_obs"], inf["episode_done"]))
    assert any(step[-1].any() for step in out[1:])
    for i in range(4):
        np.testing.assert_equal({g: o[i : i + 1] for g, o in out[0].items()}, outs[i][0])
        for step, ref in zip(out[1:], outs[i][1:]):
            copy_i = tuple({g: x[i : i + 1] for g, x in d.items()} for d in step[:5]) + (step[5][i : i + 1],)
            np.testing.assert_equal(copy_i, ref)


@pytest.mark.parametrize("env_id", ["climbing-v0", "iterated-prisoners-dilemma-v0"])
def test_round_trip_matches_the_native_env(env_id):
    native = marlkit.make(env_id, num_envs=3)
    bridged = from_pettingzoo(lambda: to_pettingzoo(env_id), num_envs=3)
    assert bridged.groups == {"player": native.groups["players"]}
    native.reset(seed=0)
    bridged.reset(seed=0)
    rng = np.random.default_rng(2)
    for _ in range(25):
        a = rng.integers(3 if env_id == "climbing-v0" else 2, size=(3, 2))
        n_obs, n_rew, n_term, n_trunc, n_info = native.step({"players": a})
        b_obs, b_rew, b_term, b_trunc, b_info = bridged.step({"player": a})
        np.testing.assert_array_equal(b_rew["player"], n_rew["players"])
        np.testing.assert_array_equal(b_obs["player"], n_obs["players"])
        np.testing.assert_array_equal(b_trunc["player"], n_trunc["players"])
        np.testing.assert_array_equal(b_info["episode_done"], n_info["episode_done"])
        np.testing.assert_array_equal(b_info.get("final_state", 0), n_info.get("final_state", 0))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_round_trip_of_every_registered_env_passes_check_env(env_id):
    renders = bool(to_pettingzoo(env_id).metadata["render_modes"])
    env = from_pettingzoo(lambda: to_pettingzoo(env_id, render_mode="rgb_array" if renders else None), num_envs=2)
    native_info = marlkit.make(env_id).reset(seed=0)[1]
    assert ("action_mask" in env.reset(seed=0)[1]) == ("action_mask" in native_info)
    check_env(env, steps=150, check_render=renders)


def _kaz(**kwargs):
    pytest.importorskip("pygame")
    # spawn_delay=1: KAZ keeps its zombie spawn timer across resets, so only then is reset(seed) reproducible.
    # line_death: agents that touch the top or bottom wall die, so random agents die mid-episode.
    return functools.partial(
        pettingzoo.make, "parallel", "butterfly/knights_archers_zombies-v11", spawn_delay=1, line_death=True, **kwargs
    )


def test_butterfly_heterogeneous_agents_that_die():
    """Knights Archers Zombies: two roles (archers shoot, knights swing a mace), agents die mid-episode."""
    env = from_pettingzoo(_kaz(max_cycles=60), num_envs=2)
    assert env.groups == {"archer": ("archer_0", "archer_1"), "knight": ("knight_0", "knight_1")}
    check_env(env, steps=130, check_render=False)

    sent = [[] for _ in env.envs]
    for c, pz in enumerate(env.envs):
        pz.step = functools.partial(lambda inner, log, acts: (log.append(set(acts)), inner(acts))[1], pz.step, sent[c])
    _, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    dead_before = {g: np.zeros_like(a) for g, a in info["active"].items()}
    deaths = 0
    for _ in range(60):
        obs, rew, term, trunc, info = env.step(sample_actions(env, rng=rng))
        if info["episode_done"].any():
            break
        for g, ids in env.groups.items():
            dead = ~info["active"][g]
            assert (term[g] | trunc[g])[dead].all(), "a dead agent must stay terminated"
            assert (rew[g][dead_before[g]] == 0).all() and (obs[g][dead_before[g]] == 0).all()
            for c in range(env.num_envs):
                dead_ids = {ids[i] for i in np.flatnonzero(dead_before[g][c])}
                assert not dead_ids & sent[c][-1], "an action was sent to a dead agent"
            deaths += int((dead & ~dead_before[g]).sum())
            dead_before[g] = dead
    assert deaths > 0, "no agent died mid-episode"


def test_parallelizable_aec_env_with_discrete_observations():
    env = from_pettingzoo(lambda: pettingzoo.make("aec", "classic/rps-v2"), num_envs=2)  # AEC -> aec_to_parallel
    assert env.groups == {"player": ("player_0", "player_1")} and env.state_source == "observations"
    assert env.observation_space("player_0") == spaces.Box(0, 1, (4,), np.int64)  # Discrete(4), one-hot
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["player"].sum(-1), 1)
    check_env(env, steps=60, check_render=False)


# ------------------------------------------------------------- a small env with every space the bridge converts
class Squad(ParallelEnv):
    """Three roles with different spaces; the drone dies at step 2 and the episode ends at step ``length``.

    scout: Dict(observation, action_mask) observations, Discrete(4) actions (action 3 masked out);
    tank:  Discrete(3) observations (flattened one-hot), MultiDiscrete([2, 3]) actions, an info action mask is
           not given; drone: Box observations and actions, dies at step 2. ``appear`` adds an agent at step 1.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "squad_v0", "is_parallelizable": True}

    def __init__(self, length=4, appear=False, action_space=None, masked=True):
        self.possible_agents = ["scout_0", "tank_0", "drone_0"]
        scout = spaces.Box(-1, 1, (2,), np.float32)
        self._obs = {
            "scout_0": spaces.Dict({"observation": scout, "action_mask": spaces.Box(0, 1, (4,), np.int8)})
            if masked
            else scout,
            "tank_0": spaces.Discrete(3),
            "drone_0": spaces.Box(0, 5, (3,), np.float32),
        }
        self._act = {
            "scout_0": spaces.Discrete(4),
            "tank_0": spaces.MultiDiscrete([2, 3]),
            "drone_0": action_space or spaces.Box(-1, 1, (2,), np.float32),
        }
        self.length, self.appear, self.masked, self.received = length, appear, masked, []

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self, agent):
        if agent == "scout_0":
            o = np.full(2, self.t / 10, np.float32)
            return {"observation": o, "action_mask": np.array([1, 1, 1, 0], np.int8)} if self.masked else o
        return self.t % 3 if agent == "tank_0" else np.full(3, self.t, np.float32)

    def reset(self, seed=None, options=None):
        self.t = 0
        self.agents = list(self.possible_agents)
        return {a: self._observe(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.received.append(dict(actions))
        assert actions["scout_0"] != 3 or not self.masked, "masked action reached the env"
        self.t += 1
        if self.appear and self.t == 1:
            self.agents.append("medic_0")
        term = {a: (a == "drone_0" and self.t == 2) or self.t >= self.length for a in self.agents}
        obs = {a: self._observe(a) for a in self.agents if a != "medic_0"}
        rew = {a: 1.0 for a in self.agents}
        out = obs, rew, term, dict.fromkeys(self.agents, False), {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not term[a]]
        return out


def test_heterogeneous_spaces_are_converted():
    env = from_pettingzoo(Squad, num_envs=2)
    assert env.groups == {"scout": ("scout_0",), "tank": ("tank_0",), "drone": ("drone_0",)}
    assert env.observation_space("scout_0") == spaces.Box(-1, 1, (2,), np.float32)
    assert env.observation_space("tank_0") == spaces.Box(0, 1, (3,), np.int64)
    assert env.state_source == "observations" and env.state_space.shape == (2 + 3 + 3,)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs["tank"], [[[1, 0, 0]]] * 2)
    np.testing.assert_array_equal(info["action_mask"]["scout"], [[[True, True, True, False]]] * 2)
    assert set(info["action_mask"]) == {"scout"}  # only Discrete groups get masks
    # check_env wants masks for every group or none (see its _check_masks), so it runs on the unmasked variant.
    check_env(from_pettingzoo(functools.partial(Squad, masked=False), num_envs=2), steps=30, check_render=False)


def test_dead_agents_get_zeros_and_send_no_actions():
    env = from_pettingzoo(functools.partial(Squad, length=4))
    env.reset(seed=0)
    acts = {"scout": np.array([[0]]), "tank": np.array([[[1, 2]]]), "drone": np.zeros((1, 1, 2), np.float32)}
    history = [env.step(acts) for _ in range(4)]
    (o1, r1, t1, _, i1), (o2, r2, t2, _, i2), (o3, r3, t3, _, i3), (_, _, t4, _, i4) = history
    assert not t1["drone"].any() and t2["drone"].all() and t3["drone"].all()
    assert not i2["active"]["drone"].any() and i1["active"]["drone"].all()
    assert r2["drone"][0, 0] == 1.0 and r3["drone"][0, 0] == 0.0  # rewarded at death, zero afterwards
    assert o2["drone"].any() and not o3["drone"].any()
    assert i3["action_mask"]["scout"][0, 0].tolist() == [True, True, True, False]
    assert not i3["episode_done"][0] and i4["episode_done"][0]
    received = env.envs[0].received
    assert [set(a) for a in received[:2]] == [{"scout_0", "tank_0", "drone_0"}] * 2
    assert [set(a) for a in received[2:]] == [{"scout_0", "tank_0"}] * 2
    assert received[0]["tank_0"].tolist() == [1, 2] and isinstance(received[0]["scout_0"], int)
    with pytest.raises(ActionError, match="masked"):
        env.step({**acts, "scout": np.array([[3]])})


def test_seeds_of_copies_and_state_from_the_env():
    seen = []

    class Recorder(Squad):
        def reset(self, seed=None, options=None):
            seen.append(seed)
            return super().reset(seed, options)

    env = from_pettingzoo(Recorder, num_envs=3, seed=7)
    env.reset()
    env.reset(seed=20)
    assert seen == [7, 8, 9, 20, 21, 22]
    fn = _mpe("simple_spread_v3")
    env = from_pettingzoo(fn, num_envs=2)
    env.reset(seed=1)
    ref = fn()
    ref.reset(seed=2)
    np.testing.assert_array_equal(env.state()[1], ref.state())


@pytest.mark.parametrize(
    "factory, error, message",
    [
        (functools.partial(Squad, appear=True), ValueError, "appeared mid-episode"),
        (functools.partial(Squad, action_space=spaces.MultiBinary(2)), TypeError, "Discrete, Box and MultiDiscrete"),
        (lambda: _kaz(obs_method="vector-sequence")(), TypeError, "cannot be flattened"),
        (3, TypeError, "builds a new env"),
    ],
)
def test_from_pettingzoo_rejects_what_it_cannot_bridge(factory, error, message):
    with pytest.raises(error, match=message):
        env = from_pettingzoo(factory)
        _, info = env.reset(seed=0)
        env.step(sample_actions(env, info.get("action_mask"), np.random.default_rng(0)))


def test_turn_based_aec_env_and_bad_factories_are_explained():
    from pettingzoo.test.example_envs import generated_agents_parallel_v0

    turns = from_pettingzoo(lambda: pettingzoo.make("aec", "classic/tictactoe-v3"))  # bridged turn by turn
    assert turns.turn_based and type(turns).__name__ == "PettingZooTurnEnv"
    pytest.importorskip("mpe2")
    with pytest.raises(TypeError, match=r"pass mpe2\.simple_spread_v3\.parallel_env"):
        from_pettingzoo(__import__("mpe2.simple_spread_v3").simple_spread_v3)
    with pytest.raises(TypeError, match="builds a new env for each copy"):
        from_pettingzoo(_mpe("simple_spread_v3")())
    with pytest.raises(ValueError, match="possible_agents"):
        from_pettingzoo(generated_agents_parallel_v0.parallel_env)


def test_groups_override():
    fn = _mpe("simple_tag_v3", max_cycles=5)
    env = from_pettingzoo(fn, groups={"chasers": ["adversary_0", "adversary_1", "adversary_2"], "runner": ["agent_0"]})
    assert list(env.groups) == ["chasers", "runner"]
    with pytest.raises(ValueError, match="missing \\['agent_0'\\]"):
        from_pettingzoo(fn, groups={"chasers": ["adversary_0", "adversary_1", "adversary_2"]})
    with pytest.raises(ValueError, match="must share spaces"):
        from_pettingzoo(fn, groups={"all": ["adversary_0", "adversary_1", "adversary_2", "agent_0"]})
