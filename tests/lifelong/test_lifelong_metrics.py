"""Continual-learning metrics on matrices worked out by hand."""

import numpy as np
import pytest

from marlkit.lifelong import metrics as M

#: 3 tasks: task 0 learned to 0.9, dropped to 0.3 after task 1 and 0.1 at the end; task 1 learned to 0.8, then 0.6.
R = np.array(
    [
        [0.9, 0.1, 0.0],
        [0.3, 0.8, 0.2],
        [0.1, 0.6, 0.7],
    ]
)


def test_average_performance_is_the_last_row_mean():
    assert M.average_performance(R) == pytest.approx((0.1 + 0.6 + 0.7) / 3)


def test_continual_world_forgetting():
    assert M.forgetting_per_task(R) == pytest.approx([0.8, 0.2, 0.0])
    assert M.forgetting(R) == pytest.approx(1.0 / 3)


def test_meal_forgetting_uses_the_best_value_after_training_starts():
    # Task 1 peaks at 0.95 mid-way through stage 2 (a history row), above its end-of-stage 0.8.
    history = np.array(
        [
            [0.5, 0.99, 0.0],  # within stage 0: task 1 untrained, its 0.99 must not count
            [0.9, 0.1, 0.0],  # end of stage 0
            [0.3, 0.8, 0.2],  # end of stage 1
            [0.2, 0.95, 0.5],  # within stage 2
            [0.1, 0.6, 0.7],  # end of stage 2
        ]
    )
    per = M.meal_forgetting_per_task(R, history, stage_ends=[1, 2, 4])
    assert per == pytest.approx([0.8, 0.35, 0.0])
    assert M.meal_forgetting(R, history, [1, 2, 4]) == pytest.approx(1.15 / 3)
    # Without history: the rows of R; a task that improves later has no negative forgetting.
    up = np.array([[0.2, 0.0], [0.5, 0.9]])
    assert M.meal_forgetting_per_task(up) == pytest.approx([0.0, 0.0])
    assert M.forgetting_per_task(up) == pytest.approx([-0.3, 0.0])


def test_auc_and_forward_transfer():
    assert M.auc([0.0, 1.0]) == pytest.approx(0.5)
    assert M.auc([0.0, 0.5, 1.0, 1.0]) == pytest.approx((0.25 + 0.75 + 1.0) / 3)
    curves = [[0.0, 1.0], [0.5, 1.0], [1.0, 1.0]]
    refs = [[0.0, 1.0], [0.0, 0.5], [1.0, 1.0]]
    # task 0: same as reference -> 0; task 1: (0.75 - 0.25) / 0.75; task 2: reference perfect -> 0.
    assert M.forward_transfer_per_task(curves, refs) == pytest.approx([0.0, 2 / 3, 0.0])
    assert M.forward_transfer(curves, refs) == pytest.approx(2 / 9)
    # Slower than from scratch is negative transfer.
    assert M.forward_transfer([[0.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(-1.0)


def test_plasticity_compares_late_tasks_with_the_first():
    refs = [[0.0, 1.0]] * 4
    same = [[0.0, 1.0]] * 4
    assert M.plasticity(same, refs) == pytest.approx(1.0)
    slower = [[0.0, 1.0], [0.0, 1.0], [0.0, 0.5], [0.0, 0.0]]  # last half AUCs 0.25 and 0 vs 0.5
    assert M.plasticity(slower, refs) == pytest.approx((0.25 / 0.5 + 0.0) / 2)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="T x T"):
        M.average_performance(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one reference curve per task"):
        M.forward_transfer([[0, 1]], [])


def test_summary_holds_both_conventions():
    s = M.summary(R, [[0, 0.9], [0, 0.8], [0, 0.7]], [[0, 0.9], [0, 0.8], [0, 0.7]])
    assert s["forgetting"] == pytest.approx(1 / 3)
    assert s["meal_forgetting"] == pytest.approx((0.8 + 0.2) / 3)
    assert s["forward_transfer"] == pytest.approx(0.0)


def test_auc_gap_is_bounded_where_forward_transfer_is_not():
    # A reference that learns at once (AUC 0.975) and a learner two evaluations slower (AUC 0.5): CW's FT is -19,
    # the gap -0.475.
    fast, slow = [0.9, 1.0, 1.0], [0.0, 0.5, 1.0]
    assert M.auc(fast) == pytest.approx(0.975) and M.auc(slow) == pytest.approx(0.5)
    assert M.forward_transfer([slow], [fast]) == pytest.approx(-19.0)
    assert M.auc_gap([slow], [fast]) == pytest.approx(-0.475)
    assert M.auc_gap([fast, slow], [slow, slow]) == pytest.approx(0.2375)
    with pytest.raises(ValueError, match="one reference curve per task"):
        M.auc_gap([fast], [])
