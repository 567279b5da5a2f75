"""The checker must catch broken environments, each with a message naming what is wrong."""

import numpy as np
import pytest
from gymnasium import spaces

from marlkit.envs import CheckReport, MultiAgentEnv, check_env
from marlkit.envs.matrix import CLIMBING, MatrixGame


class Clipping(MatrixGame):
    """Silently clips actions instead of rejecting them."""

    def check_actions(self, actions):
        return {g: np.clip(np.asarray(a).astype(np.int64).reshape(self.num_envs, 2), 0, 2) for g, a in actions.items()}


class WrongDtype(MatrixGame):
    def _observe(self):
        return {g: o.astype(np.float64) for g, o in super()._observe().items()}


class OutOfBounds(MatrixGame):
    def _observe(self):
        return {g: o + 2.0 for g, o in super()._observe().items()}


class BadState(MatrixGame):
    def _state(self):
        return super()._state()[:, :3]


class Unseeded(MatrixGame):
    """Observations depend on a generator that reset(seed) does not reseed."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._rng = np.random.default_rng()
        self._set_spaces(
            self.groups,
            {"players": spaces.Box(-10, 10, (8,), np.float32)},
            {"players": spaces.Discrete(3)},
            spaces.Box(-10, 10, (16,), np.float32),
        )

    def _reset_copies(self, mask):
        super()._reset_copies(mask)
        self._noise = self._rng.random((self.num_envs, 2)).astype(np.float32)

    def _observe(self):
        obs = super()._observe()
        obs["players"][..., -1] += self._noise
        return obs


class NoRender(MatrixGame):
    """A valid env that does not render: no ``_render_copy`` of its own."""

    _render_copy = MultiAgentEnv._render_copy


class RendersUndeclared(MatrixGame):
    """Says it does not render, but render() returns a frame."""

    renders = False


class WrongBookkeeping(MatrixGame):
    def step(self, actions):
        obs, r, te, tr, info = super().step(actions)
        info["episode_return"] = {g: v + 1.0 for g, v in info["episode_return"].items()}
        return obs, r, te, tr, info


@pytest.mark.parametrize(
    "cls, message",
    [
        (Clipping, "accepted an invalid action"),
        (WrongDtype, "dtype float64"),
        (OutOfBounds, "outside the space bounds"),
        (BadState, "state"),
        (Unseeded, "twice gave different observations"),
        (WrongBookkeeping, "episode_return"),
        (RendersUndeclared, "renders is False but render\\(\\) returned"),
    ],
)
def test_checker_catches(cls, message):
    env = cls(CLIMBING, episode_length=3, num_envs=2)
    with pytest.raises(AssertionError, match=message):
        check_env(env, steps=30)


def test_checker_passes_a_correct_env():
    check_env(MatrixGame(CLIMBING, episode_length=3, num_envs=2), steps=30)


def test_checker_reports_what_it_found():
    report = check_env(MatrixGame(CLIMBING, episode_length=3, num_envs=2), steps=30)
    assert report == CheckReport(steps=30, episodes_ended=20, renders=True, render_checked=True, notes=())
    assert not check_env(MatrixGame(CLIMBING, num_envs=2), steps=5, check_render=False).render_checked


def test_an_env_that_does_not_render_passes_and_is_reported():
    env = NoRender(CLIMBING, episode_length=3, num_envs=2)
    assert not env.renders
    report = check_env(env, steps=30)
    assert not report.renders and not report.render_checked and "does not render" in report.notes
