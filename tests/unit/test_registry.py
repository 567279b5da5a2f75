"""The registry: versioned ids, helpful errors, and a light `import marlkit`."""

import subprocess
import sys

import pytest

import marlkit
from marlkit.envs import ActionError, register


def test_unknown_id_names_the_nearest():
    with pytest.raises(KeyError, match="did you mean 'climbing-v0'"):
        marlkit.make("climbin-v0")


def test_the_registry_answers_for_text_games_too():
    from marlkit.envs.registry import check_id, env_kind

    assert env_kind("spread-v0") == env_kind("pz:simple_spread_v3") == "batched"
    assert env_kind("tictactoe-v0") == "text"
    check_id("negotiation-v0")  # a known id, of a text game
    with pytest.raises(
        KeyError,
        match=r"'tictactoe-v0' is a text game, not a batched env: "
        r"marlkit\.envs\.text\.make_text builds it",
    ):
        marlkit.make("tictactoe-v0")
    with pytest.raises(KeyError, match=r"did you mean 'tictactoe-v0'.*text games: .*tictactoe-v0"):
        env_kind("tictacto-v0")


def test_an_array_algorithm_on_a_text_game_names_what_trains_on_it():
    from marlkit.core.config import ConfigError
    from marlkit.experiment.run import make_run_config

    with pytest.raises(
        ConfigError,
        match=r"cannot train mappo on meeting-point-v0: meeting-point-v0 is a text "
        r"game; algorithms that train on it: token-rl$",
    ):
        make_run_config("mappo", "meeting-point-v0")
    with pytest.raises(
        ConfigError,
        match=r"cannot train token-rl on spread-v0: spread-v0 is a batched env; "
        r"algorithms that train on it: happo, ia2c, ippo, ",
    ):
        make_run_config("token-rl", "spread-v0")


def test_unknown_kwarg_names_the_nearest():
    with pytest.raises(TypeError, match="did you mean 'episode_length'"):
        marlkit.make("climbing-v0", episode_lenght=3)


def test_ids_need_a_version():
    with pytest.raises(ValueError, match="carry a version"):
        register("nameless", "marlkit.envs.matrix:climbing")


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register("climbing-v0", "marlkit.envs.matrix:climbing")


def test_every_id_is_versioned():
    assert all("-v" in i and i.rsplit("-v", 1)[1].isdigit() for i in marlkit.list_envs())


@pytest.mark.parametrize("num_envs", [0, -1, 1.5, True])
def test_bad_num_envs(num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        marlkit.make("climbing-v0", num_envs=num_envs)


def test_action_errors_say_what_is_allowed():
    import numpy as np

    env = marlkit.make("climbing-v0", num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ActionError, match=r"outside Discrete\(3\): allowed values are 0..2"):
        env.step({"players": np.array([[0, 3], [0, 0]])})
    with pytest.raises(ActionError, match=r"shape \(num_envs, n_agents\) = \(2, 2\)"):
        env.step({"players": np.array([0, 1])})
    with pytest.raises(ActionError, match="missing \\['players'\\]"):
        env.step({"player": np.array([[0, 1], [0, 0]])})


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        marlkit.make("climbing-v0").step({})


def test_import_is_light():
    code = (
        "import sys, marlkit, marlkit.envs; "
        "heavy = [m for m in ('torch', 'pettingzoo', 'ray', 'transformers', 'matplotlib', 'imageio', 'mpe2') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import marlkit pulled in {out}"
