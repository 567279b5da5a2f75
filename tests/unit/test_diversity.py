"""System Neural Diversity (marlkit.metrics.diversity) on hand-built distributions, whose answers are worked out in
the comments, and the categorical W2 against an optimal-transport linear program (scipy)."""

import numpy as np
import pytest

from marlkit.metrics import categorical_distance, gaussian_w2, pairwise_behavioural_distance, system_neural_diversity


def test_identical_policies_have_no_diversity() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=(1, 40))
    assert system_neural_diversity(probs=np.repeat(probs, 4, axis=0)) == 0.0
    mean = rng.normal(size=(1, 40, 2))
    assert system_neural_diversity(mean=np.repeat(mean, 3, axis=0), std=np.full((3, 2), 0.5)) == 0.0


def test_gaussian_w2_closed_form() -> None:
    # means 3-4-5 apart, equal deviations: 5; equal means, deviations 1 and 2: 1; both: sqrt(25 + 1)
    assert gaussian_w2([0, 0], [1, 1], [3, 4], [1, 1]) == pytest.approx(5.0)
    assert gaussian_w2([0.0], [1.0], [0.0], [2.0]) == pytest.approx(1.0)
    assert gaussian_w2([0, 0], [1, 1], [3, 4], [2, 1]) == pytest.approx(np.sqrt(26))


def test_snd_is_the_mean_over_pairs_and_observations() -> None:
    # 1-d means 0, 1, 3 on the first observation and 0, 0, 0 on the second (equal deviations):
    # pair distances (0,1)=1, (0,2)=3, (1,2)=2 on the first, 0 on the second -> pair means 0.5, 1.5, 1 -> SND 1
    mean = np.array([[[0.0], [0.0]], [[1.0], [0.0]], [[3.0], [0.0]]])
    std = np.full((3, 1), 0.3)
    d = pairwise_behavioural_distance(mean=mean, std=std)
    np.testing.assert_allclose(d, [[0, 0.5, 1.5], [0.5, 0, 1.0], [1.5, 1.0, 0]])
    assert system_neural_diversity(mean=mean, std=std) == pytest.approx(1.0)


def test_snd_invariances() -> None:
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=(4, 30, 2)), rng.uniform(0.1, 1.0, size=(4, 30, 2))
    snd = system_neural_diversity(mean=mean, std=std)
    assert snd > 0
    perm = [2, 0, 3, 1]  # who is called agent 0 does not matter
    assert system_neural_diversity(mean=mean[perm], std=std[perm]) == pytest.approx(snd)
    assert system_neural_diversity(mean=mean + 7.0, std=std) == pytest.approx(snd)  # shifting every action
    assert system_neural_diversity(mean=3 * mean, std=3 * std) == pytest.approx(3 * snd)  # W2 has action units
    obs_perm = rng.permutation(30)  # the order of the observations does not matter
    assert system_neural_diversity(mean=mean[:, obs_perm], std=std[:, obs_perm]) == pytest.approx(snd)
    probs = rng.dirichlet(np.ones(4), size=(3, 20))
    assert system_neural_diversity(probs=probs[:, :, ::-1]) == pytest.approx(system_neural_diversity(probs=probs))


def _ot_w2(p: np.ndarray, q: np.ndarray) -> float:
    """W2 between p and q with actions as one-hot vectors: min over plans of sum plan * |e_a - e_b|^2, by LP."""
    from scipy.optimize import linprog

    k = len(p)
    cost = 2.0 * (1 - np.eye(k))  # |e_a - e_b|^2
    a_eq = np.vstack([np.kron(np.eye(k), np.ones(k)), np.kron(np.ones(k), np.eye(k))])
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([p, q]), bounds=(0, None))
    return float(np.sqrt(res.fun))


def test_categorical_w2_is_optimal_transport_over_the_one_hot_simplex() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        assert categorical_distance(p, q) == pytest.approx(_ot_w2(p, q), abs=1e-6)
    assert categorical_distance([1, 0, 0], [0, 1, 0]) == pytest.approx(np.sqrt(2))
    assert categorical_distance([0.5, 0.5], [1, 0]) == pytest.approx(1.0)  # TV 0.5 -> sqrt(2 * 0.5)
    assert categorical_distance([0.5, 0.5], [1, 0], "tv") == pytest.approx(0.5)
    assert categorical_distance([1, 0], [0, 1], "hellinger") == pytest.approx(1.0)
    # two agents that always pick different actions: SND is the largest W2, sqrt(2)
    assert system_neural_diversity(probs=np.eye(3)[[0, 1]][:, None, :]) == pytest.approx(np.sqrt(2))


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="probability distributions"):
        system_neural_diversity(probs=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="log_std"):
        gaussian_w2([0.0], [-1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="either probs"):
        system_neural_diversity()
    with pytest.raises(ValueError, match="unknown categorical distance"):
        categorical_distance([1, 0], [0, 1], "kl")  # type: ignore[arg-type]
