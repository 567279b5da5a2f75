"""Mixed teams (``algorithm: teams``): config errors, the env view and the split/merge of observations, infos and
rollouts, checkpoints and resume, frozen members, and short runs of learners against a random prey and against
each other on tag-v0."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import marlkit
from marlkit.algorithms.team_policies import split_info
from marlkit.algorithms.teams import GroupView, Teams, TeamsConfig, split_rollout
from marlkit.collect import Collector
from marlkit.core.config import ConfigError
from marlkit.experiment.run import RunConfig, make_run_config
from marlkit.experiment.runner import Runner, load_run

EXAMPLES = Path(__file__).parents[2] / "examples" / "configs"
QUIET = dict(progress=False, gif=False, eval_every=0, eval_episodes=8, log_every=200)
PREY_RANDOM = {"groups": ["good"], "policy": "random"}


def teams(members, env=None, **env_kwargs):
    """A built Teams on tag-v0 (3 copies) from a members mapping, through RunConfig as YAML would go."""
    cfg = RunConfig.from_dict({"algorithm": "teams", "env": {"id": "tag-v0"}, "algo": {"members": members}})
    env = env or marlkit.make("tag-v0", num_envs=3, seed=0, **env_kwargs)
    return Teams(env, cfg.algo, seed=0), env


# ------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize(
    "members, message",
    [
        (
            {"p": {"groups": ["adversaries"], "algorithm": "maddpg", "config": {"actor_lrr": 1e-3}}, "r": PREY_RANDOM},
            r"unknown config key 'algo.members.p.config.actor_lrr'; did you mean 'algo.members.p.config.actor_lr'",
        ),
        (
            {"p": {"groups": ["adversaries"], "algorithm": "madpg"}, "r": PREY_RANDOM},
            r"algo.members.p.algorithm: unknown algorithm 'madpg'; did you mean 'maddpg'",
        ),
        (
            {
                "p": {"groups": ["adversaries"], "algorithm": "mappo", "config": {"centralised_critic": False}},
                "r": PREY_RANDOM,
            },
            r"algo.members.p.config.centralised_critic = False is not allowed: True for algorithm 'mappo'",
        ),
        (
            {"p": {"groups": ["adversaries", "good"], "algorithm": "mappo"}, "r": PREY_RANDOM},
            r"group 'good' is assigned twice, to members 'p' and 'r'",
        ),
        ({"p": {"groups": ["adversaries"]}, "r": PREY_RANDOM}, r"algo.members.p needs exactly one of algorithm"),
        (
            {"p": {"groups": ["adversaries"], "algorithm": "mappo", "policy": "random"}, "r": PREY_RANDOM},
            r"got algorithm, policy",
        ),
        ({"p": {"algorithm": "mappo"}, "r": PREY_RANDOM}, r"algo.members.p.groups is missing"),
        (
            {"p": {"groups": ["adversaries"], "policy": "randm"}, "r": PREY_RANDOM},
            r"algo.members.p.policy = 'randm' matches none of",
        ),
        (
            {"p": {"groups": ["adversaries"], "policy": "constant"}, "r": PREY_RANDOM},
            r"policy: constant needs an action",
        ),
        (
            {"p": {"groups": ["adversaries"], "policy": "random", "config": {"lr": 1}}, "r": PREY_RANDOM},
            r"algo.members.p.config is only for a learning member",
        ),
        ({"p": {"groups": ["adversaries"], "algorithm": "teams"}, "r": PREY_RANDOM}, r"'teams' is not allowed"),
        (
            {"p": {"groups": ["adversaries"], "algorithm": "mappo"}, "q": {"groups": ["good"], "algorithm": "maddpg"}},
            r"algo.members.q.config.rollout_steps = 4 does not divide the 25 steps .* common multiple \(100\)",
        ),
        (
            {"p": {"groups": ["adversaries"], "algorithm": "maddpg", "grups": 1}, "r": PREY_RANDOM},
            r"unknown config key 'algo.members.p.grups'; did you mean 'algo.members.p.groups'",
        ),
    ],
)
def test_config_errors_name_what_is_wrong(members, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({"algorithm": "teams", "env": {"id": "tag-v0"}, "algo": {"members": members}})


def test_env_dependent_errors_name_the_env_groups():
    with pytest.raises(ConfigError, match=r"teams needs algo.members: .* \(adversaries, good\)"):
        teams({})
    with pytest.raises(ConfigError, match=r"'good' of this env belong to no member; every group \(adversaries, good\)"):
        teams({"p": {"groups": ["adversaries"], "algorithm": "maddpg"}})
    with pytest.raises(ConfigError, match=r"'prey' is not a group of this env \(its groups: adversaries, good\)"):
        teams({"p": {"groups": ["adversaries"], "algorithm": "maddpg"}, "r": {"groups": ["prey"], "policy": "random"}})
    with pytest.raises(ConfigError, match=r"'adversary' is not a group of this env; did you mean 'adversaries'"):
        teams({"p": {"groups": ["adversary"], "algorithm": "maddpg"}, "r": PREY_RANDOM})
    # a learner that cannot play the group's action space (iql is Discrete only; continuous tag has Box actions)
    with pytest.raises(ConfigError, match=r"algo.members.p: iql cannot play \['adversaries'\]: iql supports Discrete"):
        teams({"p": {"groups": ["adversaries"], "algorithm": "iql"}, "r": PREY_RANDOM}, continuous_actions=True)
    with pytest.raises(ConfigError, match=r"action = 7 is not an action of group 'good'.*0..4"):
        teams(
            {
                "p": {"groups": ["adversaries"], "algorithm": "maddpg"},
                "r": {"groups": ["good"], "policy": "constant", "action": 7},
            }
        )


def test_the_runner_rejects_a_bad_assignment_before_making_a_run_directory(tmp_path):
    cfg = make_run_config(
        "teams",
        "tag-v0",
        {"algo": {"members": {"p": {"groups": ["adversaries"], "algorithm": "mappo"}}}},
        out=str(tmp_path),
    )
    with pytest.raises(ConfigError, match="belong to no member"):
        Runner(cfg, default_callbacks=False)
    assert not any(tmp_path.iterdir())


def test_set_reaches_into_a_member_config():
    cfg = make_run_config(
        config=EXAMPLES / "tag_maddpg_vs_random.yaml", sets=["algo.members.predators.config.batch_size=64"]
    )
    assert cfg.algo.members["predators"].config.batch_size == 64
    assert cfg.algo.members["predators"].config.actor_lr == 1e-3  # the rest of the member is kept
    assert cfg.algo.members["prey"].policy == "random"
    with pytest.raises(ConfigError, match=r"algo\.members\.predators\.config\.batch_size must be an integer"):
        make_run_config(
            config=EXAMPLES / "tag_maddpg_vs_random.yaml", sets=["algo.members.predators.config.batch_size=big"]
        )
    # the resolved config survives a YAML round trip
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


# ---------------------------------------------------------------------------------------- view, split, merge
def test_a_member_sees_only_its_groups():
    env = marlkit.make("tag-v0", num_envs=3, seed=0)
    view = GroupView(env, ("good",))
    assert view.groups == {"good": ("agent_0",)} and view.agents == ("agent_0",)
    assert view.group_observation_space("good").shape == (14,) and view.state_space == env.state_space
    assert (view.num_envs, view.max_steps) == (3, 25)
    with pytest.raises(KeyError, match="not one of this member's groups"):
        view.group_action_space("adversaries")
    with pytest.raises(KeyError, match="not one of this member's agents"):
        view.action_space("adversary_0")
    assert not hasattr(view, "step") and not hasattr(view, "reset")


def test_split_and_merge_round_trip():
    algo, env = teams({"p": {"groups": ["adversaries"], "algorithm": "mappo"}, "r": PREY_RANDOM})
    collector = Collector(env, algo, steps=6, seed=1)
    rollout, _ = collector.collect()
    parts = {name: split_rollout(rollout, m.view.groups, m.policy.uses_state) for name, m in algo.members.items()}
    for field in ("obs", "actions", "rewards", "terminated", "truncated", "next_obs", "active"):
        merged = {g: t for p in parts.values() for g, t in getattr(p, field).items()}
        assert list(merged) == list(getattr(rollout, field))  # every group exactly once, in the env's order
        for g, t in merged.items():
            assert torch.equal(t, getattr(rollout, field)[g])
    assert torch.equal(parts["p"].state, rollout.state) and parts["r"].state is None  # only MAPPO gets the state
    assert set(parts["p"].extras) == {"adversaries"} and set(parts["p"].extras["adversaries"]) == {"logp"}
    # time slices tile the rollout
    halves = [split_rollout(rollout, {"good": 0}, True, slice(a, a + 3)) for a in (0, 3)]
    assert torch.equal(torch.cat([h.obs["good"] for h in halves]), rollout.obs["good"])
    assert torch.equal(torch.cat([h.next_state for h in halves]), rollout.next_state)
    # a member's part continues its source's stream in the member's replay
    assert split_rollout(rollout._replace(source="worker-1"), {"good": 0}, False).source == "worker-1"

    obs, info = env.reset(seed=2)
    _, _, _, _, info = env.step(algo.act(obs, env.state(), info)[0])
    own = split_info(info, {"good": 0})
    assert set(own["final_obs"]) == set(own["episode_return"]) == {"good"}
    assert own["episode_metrics"] is info["episode_metrics"] and own["episode_done"] is info["episode_done"]


def test_fixed_members_act_as_configured_on_any_number_of_copies():
    algo, env = teams({"p": {"groups": ["adversaries"], "policy": "constant", "action": 3}, "r": PREY_RANDOM})
    for copies in (3, 7):  # 3 as built; 7 like an evaluation env with more copies
        other = marlkit.make("tag-v0", num_envs=copies, seed=0)
        obs, info = other.reset(seed=0)
        actions, _ = algo.act(obs, None, info, explore=True)
        assert list(actions) == ["adversaries", "good"]
        np.testing.assert_array_equal(actions["adversaries"], np.full((copies, 3), 3))
        assert actions["good"].shape == (copies, 1) and other.check_actions(actions)


def test_random_member_honours_action_masks():
    env = marlkit.make("foraging-v0", num_envs=64, seed=0)
    cfg = TeamsConfig(members={"all": {"groups": ["agents"], "policy": "random"}})
    algo = Teams(env, cfg, seed=0)
    obs, info = env.reset(seed=0)
    for _ in range(20):
        actions, _ = algo.act(obs, None, info)
        chosen = np.take_along_axis(info["action_mask"]["agents"], actions["agents"][..., None], -1)
        assert chosen.all()
        obs, _, _, _, info = env.step(actions)


# ----------------------------------------------------------------------------- runs, checkpoints, resume
def test_mappo_predators_against_a_random_prey(tmp_path):
    cfg = make_run_config(
        config=EXAMPLES / "tag_mappo_vs_random.yaml", steps=400, num_envs=8, out=str(tmp_path), name="run", **QUIET
    )
    result = Runner(cfg, default_callbacks=False).run()
    report = json.loads((result.run_dir / "eval.json").read_text())
    assert set(report["group_return"]) == {"adversaries", "good"} and "catches" in report["metrics"]
    predators = report["teams"]["predators"]
    assert (predators["groups"], predators["plays"]) == (["adversaries"], "mappo")
    assert predators["return"] == pytest.approx(report["group_return"]["adversaries"]["mean"])
    assert report["teams"]["prey"]["plays"] == "random"
    # the predators' reward is 10 per catch, shared: their return and the catches tell the same story
    assert report["group_return"]["adversaries"]["mean"] == pytest.approx(10 * report["metrics"]["catches"]["mean"])
    assert any(k.startswith("loss/predators/") for k in result.metrics)


def test_two_learning_teams_checkpoint_and_resume(tmp_path):
    """MADDPG adversaries against IPPO prey; the checkpoint holds both; resuming one checkpoint twice gives the
    same numbers; a loaded run acts as the trained one."""
    members = {
        "predators": {
            "groups": ["adversaries"],
            "algorithm": "maddpg",
            "config": {"rollout_steps": 5, "warmup_steps": 100, "batch_size": 32},
        },
        "prey": {"groups": ["good"], "algorithm": "ippo", "config": {"epochs": 2}},
    }
    cfg = make_run_config(
        "teams",
        "tag-v0",
        {"algo": {"members": members}},
        steps=400,
        num_envs=4,
        seed=3,
        out=str(tmp_path),
        name="a",
        checkpoint_every=400,
        **QUIET,
    )
    assert cfg.algo.rollout_steps is None  # resolved by the algorithm: the longest learner's, 25
    result = Runner(cfg, default_callbacks=False).run()
    state = torch.load(result.checkpoint, weights_only=True)["algo"]
    assert set(state["members"]) == {"predators", "prey"}
    assert "replay" in state["members"]["predators"] and "optimizer" in state["members"]["prey"]
    assert {"loss/predators/critic", "loss/prey/policy", "train/predators/replay_size"} <= set(result.metrics)

    # the loaded run acts exactly as the trained one (greedy), on another number of copies
    _, env, loaded, _ = load_run(result.run_dir, num_envs=5)
    _, _, again, _ = load_run(result.run_dir, num_envs=5)
    obs, info = env.reset(seed=0)
    first, second = loaded.act(obs, env.state(), info, explore=False)[0], again.act(obs, env.state(), info, False)[0]
    for g in first:
        np.testing.assert_array_equal(first[g], second[g])

    # resume to 800 steps from the same checkpoint in two copies of the run: identical evaluations
    reports = []
    for name in ("b", "c"):
        shutil.copytree(result.run_dir, tmp_path / name)
        Runner.resume(tmp_path / name, steps=800, default_callbacks=False).run()
        reports.append(json.loads((tmp_path / name / "eval.json").read_text()))
    assert reports[0]["env_steps"] == 800 and reports[0]["group_return"] == reports[1]["group_return"]


def test_frozen_member_plays_a_trained_run_and_does_not_learn(tmp_path):
    trained = Runner(
        make_run_config(
            config=EXAMPLES / "tag_mappo_vs_random.yaml",
            steps=400,
            num_envs=8,
            out=str(tmp_path),
            name="trained",
            **QUIET,
        ),
        default_callbacks=False,
    ).run()
    members = {
        "predators": {"groups": ["adversaries"], "frozen": str(trained.run_dir)},
        "prey": {"groups": ["good"], "algorithm": "ippo", "config": {"epochs": 2}},
    }
    cfg = make_run_config(
        "teams",
        "tag-v0",
        {"algo": {"members": members}},
        steps=400,
        num_envs=8,
        out=str(tmp_path),
        name="against",
        **QUIET,
    )
    runner = Runner(cfg, default_callbacks=False)
    _, env, original, _ = load_run(trained.run_dir, num_envs=4)
    obs, info = env.reset(seed=5)
    expected = original.act(obs, env.state(), info, explore=False)[0]["adversaries"]
    runner.run()
    acted = runner.learner.act(obs, env.state(), info, explore=True)[0]  # frozen members act greedily even then
    np.testing.assert_array_equal(acted["adversaries"], expected)
    assert runner.learner.members["predators"].policy.checkpoint.endswith(".pt")

    # a frozen run must have played exactly the member's groups
    both = marlkit.train(
        "mappo", "tag-v0", steps=50, num_envs=2, out=str(tmp_path), name="both", checkpoint_every=0, **QUIET
    )
    with pytest.raises(ConfigError, match=r"trained the groups \['adversaries', 'good'\], this member plays "):
        teams({"p": {"groups": ["adversaries"], "frozen": str(both.run_dir)}, "r": PREY_RANDOM})
    with pytest.raises(ConfigError, match="is not a run directory"):
        teams({"p": {"groups": ["adversaries"], "frozen": str(tmp_path)}, "r": PREY_RANDOM})
