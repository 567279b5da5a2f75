"""The learner contracts (``marlkit.core``) held by every registered learner, on the envs it supports.

Driven by the registries like ``tests/experiment/test_algo_smoke.py``: every algorithm of the batched envs
(``list_algos("batched")``) on each env of ``ENVS`` it supports (``unsupported_reason``), plus the recurrent
Q-learners. Each learner trains a few
hundred env-steps first, so a snapshot that ignored its weights would act differently. The snapshots are rebuilt
from ``policy_state()`` alone in one fresh process (nothing of the learner's module state there).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.registry import algo_config, algo_spec, list_algos, unsupported_reason
from marlkit.collect import Collector
from marlkit.core import (
    BATCH_KINDS,
    Capabilities,
    Learner,
    LossContext,
    Policy,
    PolicySpaces,
    policy_from_state,
    policy_kinds,
)
from marlkit.data.replay import TransitionBatch
from marlkit.data.rollout import Rollout
from marlkit.envs import sample_actions
from marlkit.experiment.runner import learn

#: (env id, kwargs): discrete and continuous particles, masks (foraging), a matrix game (tabular learners).
ENVS = [("spread-v0", {}), ("spread-v0", {"continuous_actions": True}), ("foraging-v0", {}), ("climbing-v0", {})]
#: Config variants beyond the defaults (the GRU agent keeps a hidden state in its policy).
VARIANTS = {"iql": [{"recurrent": True}], "qmix": [{"recurrent": True}]}
#: Small replay and warm-up so the off-policy learners take gradient steps within TRAIN_STEPS.
FAST = {"warmup_steps": 64, "batch_size": 32, "batch_episodes": 4, "buffer_size": 4096, "epochs": 2}
TRAIN_STEPS = 400
NUM_ENVS = 4


def _cases() -> list[tuple[str, str, dict, dict]]:
    out = []
    for algo in list_algos("batched"):
        for env_id, kwargs in ENVS:
            env = marlkit.make(env_id, num_envs=1, seed=0, **kwargs)
            if unsupported_reason(algo_spec(algo), env) is None:
                for variant in [{}, *VARIANTS.get(algo, [])]:
                    name = f"{algo}-{env_id}" + ("-box" if kwargs else "") + ("-gru" if variant else "")
                    out.append((name, env_id, kwargs, variant))
    return out


CASES = _cases()
IDS = [c[0] for c in CASES]


@dataclass
class Case:
    name: str
    env: Any
    learner: Any
    collector: Collector
    initial: dict[str, Any]  # policy_state() before training
    steps: list[dict[str, Any]]  # observations to act on: reset + random steps of another env


def _config(algo: str, env: Any, variant: dict) -> Any:
    spec = algo_spec(algo)
    _, config_cls = spec.load()
    names = {f.name for f in dataclasses.fields(config_cls)}
    return algo_config(algo, {**spec.config_for(env), **{k: v for k, v in FAST.items() if k in names}, **variant})


def _observations(env_id: str, kwargs: dict, steps: int = 6) -> list[dict[str, Any]]:
    env = marlkit.make(env_id, num_envs=3, seed=0, **kwargs)  # another number of copies than training
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=1)
    out = []
    for _ in range(steps):
        out.append(
            {
                "obs": obs,
                "mask": info.get("action_mask"),
                "episode_done": info.get("episode_done"),
                "state": env.state(),
            }
        )
        obs, _, _, _, info = env.step(sample_actions(env, info.get("action_mask"), rng))
    return out


def _info(step: dict[str, Any]) -> dict[str, Any]:
    info = {}
    if step["mask"] is not None:
        info["action_mask"] = step["mask"]
    if step["episode_done"] is not None:
        info["episode_done"] = step["episode_done"]
    return info


def _act_all(actor: Any, steps: list[dict[str, Any]], explore: bool = False) -> list[dict[str, np.ndarray]]:
    return [actor.act(s["obs"], s["state"] if actor.uses_state else None, _info(s), explore)[0] for s in steps]


def _tensors(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a nested policy state, by path."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}
    if isinstance(state, dict):
        return {k: v for key, sub in state.items() for k, v in _tensors(sub, f"{prefix}/{key}").items()}
    if isinstance(state, (list, tuple)):
        return {k: v for i, sub in enumerate(state) for k, v in _tensors(sub, f"{prefix}/{i}").items()}
    return {}


def _same_tensors(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ta, tb = _tensors(a), _tensors(b)
    return ta.keys() == tb.keys() and all(ta[k].shape == tb[k].shape and torch.equal(ta[k], tb[k]) for k in ta)


def _train(case: Case, steps: int) -> None:
    learn(case.learner, case.collector, -(-steps // case.collector.steps_per_batch))


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    built = {}
    for name, env_id, kwargs, variant in CASES:
        algo = name.split("-" + env_id)[0]
        env = marlkit.make(env_id, num_envs=NUM_ENVS, seed=0, **kwargs)
        cls, _ = algo_spec(algo).load()
        learner = cls(env, _config(algo, env, variant), seed=0)
        # The collector stores the state exactly when the learner declares it reads it: training then also checks
        # that a learner declaring uses_state=False never needs it.
        collector = Collector(
            env, learner, learner.config.rollout_steps, seed=0, store_state=learner.capabilities.uses_state
        )
        case = Case(name, env, learner, collector, learner.policy().policy_state(), _observations(env_id, kwargs))
        _train(case, TRAIN_STEPS)
        built[name] = case
    return built


# ------------------------------------------------------------------------------------------------ the contract
def test_every_algorithm_is_covered():
    assert {c[0].split("-" + c[1])[0] for c in CASES} == set(list_algos("batched"))


@pytest.mark.parametrize("name", IDS)
def test_learner_satisfies_the_contract(cases, name):
    case = cases[name]
    learner, caps = case.learner, case.learner.capabilities
    assert isinstance(learner, Learner)
    assert isinstance(caps, Capabilities) and caps.batch_kind in BATCH_KINDS
    assert isinstance(caps.uses_state, bool)
    assert learner.uses_state == caps.uses_state  # the collector's view is the declared one
    assert isinstance(caps.losses, tuple) and caps.loss_terms == bool(caps.losses)
    if not name.startswith("teams"):  # a team's are its members' (tests/experiment/test_teams.py)
        assert learner.eval_extras({"per_agent_return": {}}) == {}
    # the training weights moved: a snapshot ignoring them would be caught by the tests below
    assert not _same_tensors(case.initial, learner.policy().policy_state())

    snapshot = learner.policy()
    assert isinstance(snapshot, Policy) and snapshot.kind in policy_kinds()
    assert snapshot.spaces == PolicySpaces.from_env(case.env)
    assert not snapshot.uses_state  # decentralised acting: the centralised parts stay with the learner
    assert not hasattr(snapshot, "optimizer") and not hasattr(snapshot, "replay")


def test_a_learner_declaring_uses_state_reads_it(cases):
    """Trained without the state from its start, a learner that declares it needs it fails (the other direction,
    declaring False and never needing it, is what training in the fixture checks)."""
    declaring = [c for c in CASES if cases[c[0]].learner.capabilities.uses_state]
    assert {name.split("-")[0] for name, *_ in declaring} >= {"mappo", "maa2c", "qmix", "maddpg", "teams"}
    for name, env_id, kwargs, variant in declaring:
        algo = name.split("-" + env_id)[0]
        env = marlkit.make(env_id, num_envs=NUM_ENVS, seed=0, **kwargs)
        learner = algo_spec(algo).load()[0](env, _config(algo, env, variant), seed=0)
        collector = Collector(env, learner, learner.config.rollout_steps, seed=0, store_state=False)
        with pytest.raises((AttributeError, KeyError, TypeError, ValueError)):
            _train(Case(name, env, learner, collector, {}, []), TRAIN_STEPS)


def test_capabilities_are_checked():
    with pytest.raises(ValueError, match="batch_kind = 'replay' is not allowed"):
        Capabilities("replay")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tuple of loss names"):
        Capabilities(losses=["loss"])  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- snapshots
SUBPROCESS = r"""
import json, sys
import numpy as np
import torch
from marlkit.core import policy_from_state

torch.set_num_threads(1)
cases = torch.load(sys.argv[1], weights_only=True)
out = {}
for name, case in cases.items():
    policy = policy_from_state(case["policy"])
    verdict = "ok"
    for t, step in enumerate(case["steps"]):
        info = {}
        if step["mask"] is not None:
            info["action_mask"] = {g: m.numpy() for g, m in step["mask"].items()}
        if step["episode_done"] is not None:
            info["episode_done"] = step["episode_done"].numpy()
        obs = {g: o.numpy() for g, o in step["obs"].items()}
        actions, _ = policy.act(obs, step["state"].numpy() if policy.uses_state else None, info)
        for g, expected in step["expected"].items():
            if not np.array_equal(actions[g], expected.numpy()):
                verdict = f"step {t}, group {g}: {actions[g].tolist()} != {expected.tolist()}"
    out[name] = verdict
out["_modules"] = sorted(m for m in ("marlkit.experiment.runner", "marlkit.experiment.load") if m in sys.modules)
print(json.dumps(out))
"""


def _as_tensors(d: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
    return None if d is None else {g: torch.from_numpy(np.ascontiguousarray(v)) for g, v in d.items()}


def test_snapshots_act_as_their_learners_in_a_fresh_process(cases, tmp_path):
    payload = {}
    for name, case in cases.items():
        state = case.learner.policy().policy_state()
        expected = _act_all(case.learner, case.steps)
        payload[name] = {
            "policy": state,
            "steps": [
                {
                    "obs": _as_tensors(s["obs"]),
                    "mask": _as_tensors(s["mask"]),
                    "episode_done": None if s["episode_done"] is None else torch.from_numpy(s["episode_done"]),
                    "state": torch.from_numpy(s["state"]),
                    "expected": _as_tensors(a),
                }
                for s, a in zip(case.steps, expected)
            ],
        }
    path = tmp_path / "policies.pt"
    torch.save(payload, path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(path)], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    verdicts = json.loads(done.stdout.strip().splitlines()[-1])
    assert verdicts.pop("_modules") == []  # rebuilding a policy needs neither the runner nor a run directory
    assert verdicts == {name: "ok" for name in cases}


@pytest.mark.parametrize("name", IDS)
def test_a_snapshot_is_independent_of_later_updates(cases, name):
    case = cases[name]
    snapshot = case.learner.policy()
    state, acted = snapshot.policy_state(), _act_all(snapshot, case.steps)
    saved = {k: v.clone() for k, v in _tensors(state).items()}
    _train(case, 2 * case.collector.steps * case.env.num_envs)
    assert not _same_tensors(state, case.learner.policy().policy_state())  # the learner did change
    assert all(torch.equal(v, saved[k]) for k, v in _tensors(snapshot.policy_state()).items())
    for before, after in zip(acted, _act_all(snapshot, case.steps)):
        for g in before:
            np.testing.assert_array_equal(before[g], after[g])


@pytest.mark.parametrize("name", IDS)
def test_policy_state_loads_weights_only_and_round_trips(cases, name):
    policy = cases[name].learner.policy()
    buffer = io.BytesIO()
    torch.save(policy.policy_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    again = policy_from_state(state)
    assert type(again) is type(policy) and _same_tensors(again.policy_state(), policy.policy_state())


@pytest.mark.parametrize("name", IDS)
def test_seeded_snapshots_explore_reproducibly_and_within_the_masks(cases, name):
    case = cases[name]
    first, second = (_act_all(case.learner.policy(seed=3), case.steps, explore=True) for _ in range(2))
    for step, a, b in zip(case.steps, first, second):
        for g in a:
            np.testing.assert_array_equal(a[g], b[g])
            if step["mask"] is not None:
                assert np.take_along_axis(step["mask"][g], a[g][..., None], -1).all()


def test_spaces_round_trip_as_plain_data():
    from gymnasium import spaces

    from marlkit.core.spaces import space_from_data, space_to_data

    for space in (
        spaces.Discrete(5, start=1),
        spaces.Box(-np.inf, 1.0, (2, 3), np.float32),
        spaces.Box(0, 255, (4,), np.uint8),
        spaces.MultiDiscrete([3, 4]),
        spaces.MultiBinary(6),
    ):
        data = space_to_data(space)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        buffer.seek(0)
        assert space_from_data(torch.load(buffer, weights_only=True)) == space
    with pytest.raises(TypeError, match="cannot write the space Text"):
        space_to_data(spaces.Text(5))


def test_unknown_kinds_and_non_states_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown policy kind 'nope' \(registered kinds: actor_critic, .*teams"):
        policy_from_state({"format": 1, "kind": "nope"})
    # a kind that names a module is just an unknown kind: nothing named by a file is imported
    with pytest.raises(ValueError, match="unknown policy kind 'os:system'"):
        policy_from_state({"format": 1, "kind": "os:system"})
    with pytest.raises(ValueError, match="not a policy state"):
        policy_from_state([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format 99 is not supported"):
        policy_from_state({"format": 99, "kind": "q"})


def test_learners_refuse_action_spaces_they_cannot_act_in():
    from gymnasium import spaces

    from marlkit.algorithms.dqn import DQN, DQNConfig
    from marlkit.algorithms.maddpg import MADDPG, MADDPGConfig

    with pytest.raises(ValueError, match=r"DQN needs Discrete actions; group 'agents' has Box"):
        DQN(marlkit.make("spread-v0", num_envs=1, seed=0, continuous_actions=True), DQNConfig(), seed=0)

    class MultiDiscreteActions:
        """What MADDPG reads of an env before it builds its networks."""

        def __init__(self) -> None:
            self.groups, self.num_envs = {"agents": ("a", "b")}, 1
            self.state_space = spaces.Box(-1.0, 1.0, (4,), np.float32)

        def group_observation_space(self, group: str) -> spaces.Box:
            return spaces.Box(-1.0, 1.0, (3,), np.float32)

        def group_action_space(self, group: str) -> spaces.MultiDiscrete:
            return spaces.MultiDiscrete([2, 2])

    with pytest.raises(ValueError, match=r"MADDPG needs Discrete or Box actions; group 'agents' has MultiDiscrete"):
        MADDPG(MultiDiscreteActions(), MADDPGConfig(), seed=0)


def test_a_q_policy_state_with_box_actions_is_a_clear_error():
    from gymnasium import spaces

    from marlkit.algorithms.dqn import DQN, DQNConfig
    from marlkit.core.spaces import space_to_data

    state = DQN(marlkit.make("penalty-v0", num_envs=1, seed=0), DQNConfig(), seed=0).policy().policy_state()
    state["spaces"]["action"]["players"] = space_to_data(spaces.Box(0.0, 1.0, (2,), np.float32))
    with pytest.raises(
        ValueError,
        match=r"a q policy acts on Discrete actions; this policy state gives group "
        r"'players' Box",
    ):
        policy_from_state(state)


def test_act_pettingzoo_maps_agents_to_groups_and_skips_the_done(cases):
    case = cases["mappo-spread-v0"]
    policy = case.learner.policy()
    obs = case.steps[0]["obs"]["agents"][0]  # copy 0: (3 agents, 18)
    batched, _ = policy.act({"agents": obs[None]})
    actions = policy.act_pettingzoo({f"agent_{i}": obs[i] for i in range(3)})
    assert actions == {f"agent_{i}": int(batched["agents"][0, i]) for i in range(3)}
    assert all(type(a) is int for a in actions.values())
    assert set(policy.act_pettingzoo({"agent_0": obs[0], "agent_2": obs[2]})) == {"agent_0", "agent_2"}
    with pytest.raises(KeyError, match="agent_7"):
        policy.act_pettingzoo({"agent_7": obs[0]})


def test_act_pettingzoo_honours_masks_and_resets_the_recurrent_state(cases):
    pytest.importorskip("pettingzoo")
    from marlkit.envs import to_pettingzoo

    policy = cases["iql-foraging-v0-gru"].learner.policy()
    env = to_pettingzoo("foraging-v0")
    obs, infos = env.reset(seed=0)
    policy.reset()
    for _ in range(100):
        actions = policy.act_pettingzoo(obs, infos)
        for agent, a in actions.items():
            assert infos[agent]["action_mask"][a], (agent, a)
        obs, _, _, _, infos = env.step(actions)
        if not env.agents:
            obs, infos = env.reset()
            policy.reset()
    # after reset() the batched call has no episode_done (a new episode: hidden state zeroed), later calls have one
    calls: list[bool] = []
    act = policy.act

    def spy(obs: dict, state: Any = None, info: dict | None = None, explore: bool = False) -> tuple:
        calls.append("episode_done" in (info or {}))
        return act(obs, state, info, explore)

    policy.act = spy  # type: ignore[method-assign]
    policy.reset()
    policy.act_pettingzoo(obs, infos)
    policy.act_pettingzoo(obs, infos)
    assert calls == [False, True]


# --------------------------------------------------------------------------------------------- loss-term hook
HOOKED = [("mappo", "spread-v0"), ("iql", "spread-v0"), ("maddpg", "spread-v0")]


def _l2_run(algo: str, env_id: str, weight: float | None, updates: int = 12) -> tuple[list, float, list]:
    """Train with (weight not None) an L2 pull towards the initial weights added through the hook only."""
    torch.manual_seed(0)
    env = marlkit.make(env_id, num_envs=4, seed=0)
    cls, _ = algo_spec(algo).load()
    learner = cls(env, _config(algo, env, {}), seed=0)
    init = {n: p.detach().clone() for n, p in learner.named_parameters() if p.requires_grad}

    def l2_to_init(ctx: LossContext) -> torch.Tensor:
        params = dict(ctx.learner.named_parameters())
        return weight * sum(((params[n] - p0) ** 2).sum() for n, p0 in init.items())

    if weight is not None:
        learner.add_loss_term(l2_to_init)
    collector = Collector(env, learner, learner.config.rollout_steps, seed=0)
    metrics = learn(learner, collector, updates)
    params = dict(learner.named_parameters())
    distance = math.sqrt(sum(float(((params[n].detach() - p0) ** 2).sum()) for n, p0 in init.items()))
    return metrics, distance, [p.detach().clone() for p in learner.parameters()]


@pytest.mark.parametrize("algo,env_id", HOOKED)
def test_an_l2_term_through_the_hook_keeps_weights_near_their_start(algo, env_id):
    torch.set_num_threads(1)
    plain, zero, pulled = (_l2_run(algo, env_id, w) for w in (None, 0.0, 10.0))
    assert plain[1] > 0 and pulled[1] < 0.5 * plain[1]
    # a zero-weight term changes no number at all
    assert zero[0] == plain[0] and zero[1] == plain[1]
    assert all(torch.equal(a, b) for a, b in zip(zero[2], plain[2]))


def test_loss_terms_see_their_loss_and_batch_and_can_be_removed(cases):
    maddpg, ppo = cases["maddpg-spread-v0"], cases["mappo-spread-v0"]
    seen: list[tuple[str, type]] = []

    def record(ctx: LossContext) -> torch.Tensor:
        seen.append((ctx.loss, type(ctx.batch)))
        return torch.zeros(())

    remove = maddpg.learner.add_loss_term(record, losses=("actor",))
    _train(maddpg, maddpg.collector.steps * maddpg.env.num_envs)
    assert seen and {s for s in seen} == {("actor", TransitionBatch)}  # the sampled replay batch
    remove()
    seen.clear()
    _train(maddpg, maddpg.collector.steps * maddpg.env.num_envs)
    assert seen == []

    remove = ppo.learner.add_loss_term(record)
    _train(ppo, ppo.collector.steps * ppo.env.num_envs)
    remove()
    assert {s for s in seen} == {("loss", Rollout)}  # on-policy: the rollout given to update


def test_loss_term_mistakes_are_clear_errors(cases):
    with pytest.raises(TypeError, match="TabularQ takes no loss terms"):
        cases["iql-tabular-climbing-v0"].learner.add_loss_term(lambda ctx: torch.zeros(()))
    with pytest.raises(TypeError, match="Teams takes no loss terms"):
        cases["teams-spread-v0"].learner.add_loss_term(lambda ctx: torch.zeros(()))
    learner = cases["maddpg-spread-v0"].learner
    with pytest.raises(ValueError, match=r"losses = \('policy',\) is not allowed for MADDPG: .*\('critic', 'actor'\)"):
        learner.add_loss_term(lambda ctx: torch.zeros(()), losses=("policy",))
    with pytest.raises(ValueError, match="losses = 'actor' is not allowed"):
        learner.add_loss_term(lambda ctx: torch.zeros(()), losses="actor")  # type: ignore[arg-type]
    ppo = cases["mappo-spread-v0"]
    remove = ppo.learner.add_loss_term(lambda ctx: 0.5)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="must return a scalar tensor, got float"):
        _train(ppo, 1)
    remove()
