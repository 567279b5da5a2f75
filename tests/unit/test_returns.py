"""Returns and advantages against values computed by hand."""

import pytest
import torch

from marlkit.ops import discounted_returns, gae, lambda_returns, nstep_returns

F, T_ = False, True


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def b(x):
    return torch.tensor(x, dtype=torch.bool)


def test_gae_single_episode_by_hand():
    # gamma 0.9, lambda 0.5, three steps, terminal at the end.
    r, v, nv = t([1.0, 2.0, 3.0]), t([0.5, 1.0, 1.5]), t([1.0, 1.5, 9.0])
    adv, ret = gae(r, v, nv, b([F, F, T_]), b([F, F, F]), gamma=0.9, lam=0.5)
    d2 = 3.0 - 1.5  # terminal: next value ignored
    d1 = 2.0 + 0.9 * 1.5 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    assert adv.tolist() == pytest.approx([a0, a1, a2])
    assert ret.tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])


def test_gae_truncation_bootstraps_but_does_not_leak_into_next_episode():
    # Step 1 is truncated (time limit): bootstrap from V(final_obs) = 4, but A_1 ignores step 2's advantage.
    r, v, nv = t([0.0, 1.0, 5.0]), t([1.0, 2.0, 3.0]), t([2.0, 4.0, 0.5])
    adv, _ = gae(r, v, nv, b([F, F, F]), b([F, T_, F]), gamma=0.5, lam=1.0)
    a2 = 5.0 + 0.5 * 0.5 - 3.0
    a1 = 1.0 + 0.5 * 4.0 - 2.0
    a0 = (0.0 + 0.5 * 2.0 - 1.0) + 0.5 * a1
    assert adv.tolist() == pytest.approx([a0, a1, a2])


def test_gae_batched_matches_columns():
    torch.manual_seed(0)
    r, v, nv = torch.randn(6, 4, 3), torch.randn(6, 4, 3), torch.randn(6, 4, 3)
    term, trunc = torch.rand(6, 4, 3) < 0.2, torch.rand(6, 4, 3) < 0.2
    adv, _ = gae(r, v, nv, term, trunc, 0.99, 0.95)
    for e in range(4):
        for i in range(3):
            col, _ = gae(r[:, e, i], v[:, e, i], nv[:, e, i], term[:, e, i], trunc[:, e, i], 0.99, 0.95)
            torch.testing.assert_close(adv[:, e, i], col)


def test_lambda_returns_extremes():
    r, nv = t([1.0, 1.0, 1.0]), t([10.0, 20.0, 30.0])
    none = b([F, F, F])
    # lambda = 0: one-step TD targets.
    assert lambda_returns(r, nv, none, none, 0.5, 0.0).tolist() == pytest.approx([6.0, 11.0, 16.0])
    # lambda = 1: Monte-Carlo with the bootstrap at the rollout end: 1 + .5 (1 + .5 (1 + .5 * 30)).
    assert lambda_returns(r, nv, none, none, 0.5, 1.0).tolist() == pytest.approx([1 + 0.5 * 9.0, 9.0, 16.0])


def test_lambda_returns_equal_gae_returns():
    torch.manual_seed(1)
    r, v, nv = torch.randn(7, 5), torch.randn(7, 5), torch.randn(7, 5)
    term, trunc = torch.rand(7, 5) < 0.2, torch.rand(7, 5) < 0.2
    # GAE's returns are λ-returns when, inside an episode, the next state's value is the next step's value.
    nv = torch.cat([torch.where((term | trunc)[:-1], nv[:-1], v[1:]), nv[-1:]])
    _, ret = gae(r, v, nv, term, trunc, 0.9, 0.7)
    torch.testing.assert_close(lambda_returns(r, nv, term, trunc, 0.9, 0.7), ret)


def test_nstep_returns_by_hand():
    r, nv = t([1.0, 2.0, 3.0, 4.0]), t([10.0, 20.0, 30.0, 40.0])
    term, trunc = b([F, T_, F, F]), b([F, F, F, F])
    g = nstep_returns(r, nv, term, trunc, gamma=0.5, n=2)
    # t=0: 1 + .5*2, episode terminates at step 1: no bootstrap.  t=1: 2 (terminal).
    # t=2: 3 + .5*4 + .25*40.  t=3: 4 + .5*40 (rollout end).
    assert g.tolist() == pytest.approx([2.0, 2.0, 15.0, 24.0])
    # n = 1 equals one-step TD targets.
    assert nstep_returns(r, nv, term, trunc, 0.5, 1).tolist() == pytest.approx([6.0, 2.0, 18.0, 24.0])


def test_nstep_truncated_bootstraps_from_final_obs():
    r, nv = t([1.0, 1.0, 1.0]), t([5.0, 7.0, 9.0])
    g = nstep_returns(r, nv, b([F, F, F]), b([T_, F, F]), gamma=1.0, n=3)
    assert g.tolist() == pytest.approx([1.0 + 5.0, 1.0 + 1.0 + 9.0, 1.0 + 9.0])


def test_discounted_returns_monte_carlo():
    r = t([1.0, 1.0, 1.0, 1.0])
    g = discounted_returns(r, b([F, T_, F, F]), b([F, F, F, F]), gamma=0.5)
    assert g.tolist() == pytest.approx([1.5, 1.0, 1.5, 1.0])


def test_nstep_rejects_bad_n():
    with pytest.raises(ValueError):
        nstep_returns(t([1.0]), t([1.0]), b([F]), b([F]), 0.9, 0)
