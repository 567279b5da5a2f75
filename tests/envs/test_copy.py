"""Every registered env (and text game) survives ``copy.deepcopy`` and ``pickle``: a copy made before ``reset`` or in
the middle of an episode steps exactly like the original, through autoresets, and shares no memory with it."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import marlkit
from marlkit.envs import sample_actions
from marlkit.envs.base import MultiAgentEnv, SharedBuffers
from marlkit.envs.registry import list_envs
from marlkit.envs.text import list_text_envs, make_text

# MaMuJoCo's 1000-step episodes: tests/envs/test_mujoco.py runs these checks with a short time limit
ENV_IDS = [e for e in list_envs() if not e.startswith("mamujoco-")]

COPIES: dict[str, Callable[[Any], Any]] = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda env: pickle.loads(pickle.dumps(env)),
}


def _episode_steps(env: MultiAgentEnv) -> int:
    """Steps for every copy to finish at least two episodes (of at most 50 steps when the env has no time limit)."""
    return 2 * (env.max_steps or 50) + 3


def _lockstep(
    original: MultiAgentEnv, copies: list[MultiAgentEnv], info: dict[str, Any], steps: int, rng: np.random.Generator
) -> tuple[int, dict[str, Any]]:
    """Step ``original`` and ``copies`` with the same random actions; assert every output is equal. Returns the
    number of episodes that ended and the last info."""
    ended = 0
    for t in range(steps):
        actions = sample_actions(original, info.get("action_mask"), rng)
        out = original.step(actions)
        for c in copies:
            np.testing.assert_equal(
                c.step({g: a.copy() for g, a in actions.items()}), out, err_msg=f"step {t}: the copy diverged"
            )
            np.testing.assert_equal(c.state(), original.state(), err_msg=f"step {t}: state() diverged")
        info = out[4]
        ended += int(info["episode_done"].sum())
    return ended, info


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_copies_made_before_reset_step_like_the_original(env_id):
    env = marlkit.make(env_id, num_envs=3, seed=5)
    copies = [f(env) for f in COPIES.values()]
    obs, info = env.reset()  # the constructor's seed: the copies must carry it too
    for c in copies:
        np.testing.assert_equal(c.reset(), (obs, info))
    assert _lockstep(env, copies, info, _episode_steps(env), np.random.default_rng(0))[0] >= 3
    for s in (11, 12):  # and a reseed gives the same again
        obs, info = env.reset(seed=s)
        for c in copies:
            np.testing.assert_equal(c.reset(seed=s), (obs, info))
        _lockstep(env, copies, info, 7, np.random.default_rng(s))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_copies_made_mid_episode_continue_without_reset(env_id):
    env = marlkit.make(env_id, num_envs=3)
    _, info = env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(4):  # into the first episode of every env (none ends this early)
        _, _, _, _, info = env.step(sample_actions(env, info.get("action_mask"), rng))
    copies = [f(env) for f in COPIES.values()]
    ended, info = _lockstep(env, copies, info, _episode_steps(env), rng)
    assert ended >= 3
    # The copies share nothing with the original: stepping only a copy leaves the original where it was.
    before = env.state()
    copies[0].step(sample_actions(env, info.get("action_mask"), rng))
    copies[1].step(sample_actions(env, info.get("action_mask"), rng))
    np.testing.assert_equal(env.state(), before)


class Views(SharedBuffers):
    """Views of every kind into one buffer, some nested in containers, one read-only, one a view of a view."""

    def __init__(self) -> None:
        self.buf = np.zeros((4, 6))
        self.rows = self.buf[1:3]
        self.cols_reversed = self.buf[:, ::-2].T
        self.nested = {"a": [self.buf[0], (self.buf[3, 1:],)], "same_list": None}
        self.nested["same_list"] = self.nested["a"]
        frozen = self.buf[2:]
        frozen.flags.writeable = False
        self.frozen = frozen
        self.of_view = self.rows[:, 2:4]
        self.own = np.arange(3.0)  # owns its memory


@pytest.mark.parametrize("how", [*COPIES, "copy of a copy"])
def test_shared_buffers_keep_every_kind_of_view(how):
    original = Views()
    c = COPIES["pickle"](COPIES["deepcopy"](original)) if how == "copy of a copy" else COPIES[how](original)
    assert not np.shares_memory(c.buf, original.buf)
    c.buf[...] = np.arange(24.0).reshape(4, 6)
    np.testing.assert_equal(c.rows, c.buf[1:3])
    np.testing.assert_equal(c.cols_reversed, c.buf[:, ::-2].T)
    np.testing.assert_equal(c.nested["a"][0], c.buf[0])
    np.testing.assert_equal(c.nested["a"][1][0], c.buf[3, 1:])
    assert c.nested["same_list"] is c.nested["a"]
    np.testing.assert_equal(c.frozen, c.buf[2:])
    assert not c.frozen.flags.writeable and c.rows.flags.writeable
    np.testing.assert_equal(c.of_view, c.buf[1:3, 2:4])
    np.testing.assert_equal(c.own, original.own)
    assert not original.buf.any(), "writing the copy reached the original"


def test_shallow_copy_shares_everything():
    original = Views()
    c = copy.copy(original)
    assert c.buf is original.buf and c.rows is original.rows and c.nested is original.nested


def _sample(space: Any, mask: np.ndarray | None, rng: np.random.Generator) -> Any:
    if hasattr(space, "n"):
        allowed = np.arange(space.n) if mask is None else np.flatnonzero(mask)
        return int(space.start + rng.choice(allowed))
    return rng.uniform(space.low, space.high).astype(space.dtype)


@pytest.mark.pettingzoo
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pettingzoo_view_survives_copies(env_id):
    pytest.importorskip("pettingzoo")
    from marlkit.envs.pettingzoo import to_pettingzoo

    env = to_pettingzoo(env_id)
    rng = np.random.default_rng(4)
    _, infos = env.reset(seed=2)
    for _ in range(3):  # copies are made mid-episode (where episodes are longer than a step)
        *_, infos = env.step({a: _sample(env.action_space(a), infos[a].get("action_mask"), rng) for a in env.agents})
        if not env.agents:
            _, infos = env.reset()
    copies = [f(env) for f in COPIES.values()]
    episodes = 0
    for t in range(_episode_steps(env.env)):
        if not env.agents:
            episodes += 1
            out = env.reset(seed=100 + t)
            for c in copies:
                np.testing.assert_equal(c.reset(seed=100 + t), out)
            infos = out[1]
        actions = {a: _sample(env.action_space(a), infos[a].get("action_mask"), rng) for a in env.agents}
        out = env.step(actions)
        for c in copies:
            np.testing.assert_equal(c.step(dict(actions)), out, err_msg=f"step {t}: the PettingZoo copy diverged")
            np.testing.assert_equal(c.state(), env.state())
            assert c.agents == env.agents
        infos = out[4]
    assert episodes >= 2


@pytest.mark.pettingzoo
def test_bridged_pettingzoo_env_copies():
    """Copies of PettingZoo envs that pickle as constructor arguments (mpe2's) are new envs: the bridge's copy says
    so and, once reset, steps like the original; envs that copy their state continue mid-episode."""
    pytest.importorskip("mpe2")
    from mpe2 import simple_speaker_listener_v4

    from marlkit.envs.pettingzoo import from_pettingzoo, to_pettingzoo

    rng = np.random.default_rng(0)
    env = from_pettingzoo(lambda: simple_speaker_listener_v4.parallel_env(max_cycles=10), num_envs=2)
    _, info = env.reset(seed=0)
    _, info = _lockstep(env, [], info, 3, rng)
    copies = [f(env) for f in COPIES.values()]
    for c in copies:
        with pytest.raises(RuntimeError, match="call reset\\(\\) before step\\(\\)"):
            c.step(sample_actions(env, rng=rng))
    out = env.reset(seed=7)
    for c in copies:
        np.testing.assert_equal(c.reset(seed=7), out)
    assert _lockstep(env, copies, out[1], 25, rng)[0] >= 4

    env = from_pettingzoo(lambda: to_pettingzoo("spread-v0", max_steps=10), num_envs=2)
    _, info = env.reset(seed=0)
    _, info = _lockstep(env, [], info, 3, rng)
    copies = [f(env) for f in COPIES.values()]
    assert _lockstep(env, copies, info, 25, rng)[0] >= 4


# ------------------------------------------------------------------------------------------------ text games
WORDS = [
    "B2",
    "A1",
    "C3",
    "stag",
    "hare",
    "cooperate",
    "defect",
    "propose: books=1 hats=1",
    "accept",
    "meet at C3",
    "red",
    "green",
    "blue",
    "hello",
]


def _text_actions(env: Any, to_act: tuple[str, ...], rng: np.random.Generator) -> dict[str, Any]:
    actions: dict[str, Any] = {}
    for a in to_act:
        space = env.action_space(a)
        actions[a] = (
            str(rng.choice(WORDS))
            if not hasattr(space, "low") and not hasattr(space, "n")
            else _sample(space, None, rng)
        )
    return actions


@pytest.mark.parametrize("env_id", list_text_envs())
def test_text_game_copies_play_like_the_original(env_id):
    env = make_text(env_id, seed=9)
    rng = np.random.default_rng(0)
    _, info = env.reset()
    for _ in range(2):  # copies are made mid-episode
        _, _, term, trunc, info = env.step(_text_actions(env, info["to_act"], rng))
        assert not (term or trunc)
    copies = [f(env) for f in COPIES.values()]
    episodes = 0
    for t in range(150):
        actions = _text_actions(env, info["to_act"], rng)
        out = env.step(actions)
        for c in copies:
            np.testing.assert_equal(c.step(copy.deepcopy(actions)), out, err_msg=f"step {t}: the copy diverged")
            np.testing.assert_equal(c.outcome(), env.outcome())
        _, _, term, trunc, info = out
        if term or trunc:
            episodes += 1
            out = env.reset()  # no seed: each continues its own generator
            for c in copies:
                np.testing.assert_equal(c.reset(), out)
            info = out[1]
    assert episodes >= 2
