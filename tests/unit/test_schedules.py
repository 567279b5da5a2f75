"""Schedules against values computed by hand, and the run's progress they are read from."""

import pytest

from marlkit.core import Progress
from marlkit.ops import constant, exponential, linear


def test_linear_goes_from_start_to_end_over_its_duration_then_stays():
    eps = linear(1.0, 0.05, 50_000)
    assert eps(0) == 1.0
    assert eps(25_000) == pytest.approx(0.525)
    assert eps(50_000) == pytest.approx(0.05) and eps(10**9) == eps(50_000)
    assert eps(10_000) == 1.0 + 0.2 * (0.05 - 1.0)  # the exact expression, so results computed before it agree
    rising = linear(0.0, 2.0, 4)
    assert [rising(s) for s in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


def test_linear_of_no_duration_is_its_end_from_the_start():
    assert linear(1.0, 0.05, 0)(0) == pytest.approx(0.05)


def test_linear_to_zero_is_one_minus_the_fraction():
    # learning-rate annealing: lr * linear(1, 0, budget)(trained) is exactly lr * (1 - trained / budget)
    factor = linear(1.0, 0.0, 3000)
    for trained in (0, 1, 7, 1234, 2999, 3000, 5000):
        assert factor(trained) == max(1.0 - trained / 3000, 0.0)


def test_exponential_decays_per_step_down_to_its_floor():
    temperature = exponential(16.0, 0.5, 0.05)
    assert [temperature(s) for s in range(4)] == [16.0, 8.0, 4.0, 2.0]
    assert temperature(100) == 0.05
    assert exponential(16.0, 0.995, 0.05)(300) == max(0.05, 16.0 * 0.995**300)


def test_constant():
    assert constant(3)(0) == constant(3)(10**6) == 3.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: linear(1.0, 0.0, -1), r"duration = -1 is not allowed: a number of steps >= 0"),
        (lambda: exponential(1.0, 0.0, 0.1), r"decay = 0.0 is not allowed: a number in \(0, 1\]"),
        (lambda: exponential(1.0, 1.5, 0.1), r"decay = 1.5 is not allowed"),
    ],
)
def test_bad_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_progress_counts_the_batch_of_the_coming_update():
    p = Progress(env_steps=1200, total_steps=3000, batch_steps=200)
    assert p.trained_steps == 1000 and p.fraction == pytest.approx(1 / 3)
    assert Progress().fraction == 0.0 and Progress(50, 0, 50).fraction == 0.0  # no budget: nothing annealed
    with pytest.raises(ValueError, match="batch_steps <= env_steps"):
        Progress(env_steps=100, total_steps=3000, batch_steps=200)
