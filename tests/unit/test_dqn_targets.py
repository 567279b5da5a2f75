"""DQN's bootstrap on known Q-values: double DQN picks the next action with the online network and values it with
the target network (masked actions excluded); the target network is copied every ``target_update_every`` gradient
steps, or follows the online one by Polyak averaging."""

import numpy as np
import pytest
import torch
from torch import nn

import marlkit
from marlkit.algorithms.dqn import DQN, DQNConfig
from marlkit.collect import Collector
from marlkit.data import GroupTransitions, TransitionBatch

#: Q of the next observation, the same for every sample: the online network prefers action 1, the target action 2.
ONLINE_NEXT = [1.0, 5.0, 0.0]
TARGET_NEXT = [3.0, 2.0, 9.0]


class FixedQ(nn.Module):
    """A Q-network whose output is ``q`` for every observation."""

    def __init__(self, q: list[float]) -> None:
        super().__init__()
        self.q = torch.tensor(q)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q.expand(*obs.shape[:-1], len(self.q))


def transitions(B: int, n: int, d: int, next_mask: torch.Tensor | None = None) -> GroupTransitions:
    """``B`` samples of zero observations, action 0, zero returns and discount 1, bootstrapping from ones."""
    return GroupTransitions(
        obs=torch.zeros(B, n, d),
        actions=torch.zeros(B, n, dtype=torch.int64),
        returns=torch.zeros(B, n),
        discount=torch.ones(B, n),
        next_obs=torch.ones(B, n, d),
        active=torch.ones(B, n, dtype=torch.bool),
        mask=None,
        next_mask=None if next_mask is None else next_mask.expand(B, n, 3),
    )


def next_values(double_q: bool, next_mask: torch.Tensor | None = None) -> torch.Tensor:
    env = marlkit.make("penalty-v0", num_envs=1, seed=0)
    algo = DQN(env, DQNConfig(double_q=double_q), seed=0)
    algo.online["agents"]["players"] = FixedQ(ONLINE_NEXT)
    algo.target["agents"]["players"] = FixedQ(TARGET_NEXT)
    b = transitions(4, 2, env.group_observation_space("players").shape[0], next_mask)
    _, q_next, _, _, _ = algo._values("players", b, TransitionBatch({"players": b}, None, None))
    return q_next


def test_double_q_picks_with_the_online_network_and_values_with_the_target():
    assert next_values(double_q=True).unique().tolist() == [2.0]  # online argmax 1, target's Q of action 1
    assert next_values(double_q=False).unique().tolist() == [9.0]  # plain DQN: the target's own max


def test_double_q_never_bootstraps_from_a_masked_action():
    mask = torch.tensor([True, False, True])  # the online favourite (1) is not allowed in the next state
    assert next_values(double_q=True, next_mask=mask).unique().tolist() == [3.0]  # online's best allowed: 0
    assert next_values(double_q=False, next_mask=torch.tensor([True, True, False])).unique().tolist() == [3.0]


def train(cfg: DQNConfig, updates: int):
    """A DQN taking one gradient step per update from the first one; yields after every update."""
    env = marlkit.make("penalty-v0", num_envs=4, seed=0)
    torch.manual_seed(0)
    algo = DQN(env, cfg, seed=0)
    collector = Collector(env, algo, cfg.rollout_steps, seed=0)
    for _ in range(updates):
        rollout, _ = collector.collect()
        algo.update(rollout)
        yield algo


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_the_target_network_is_copied_every_target_update_every_gradient_steps():
    cfg = DQNConfig(rollout_steps=2, warmup_steps=0, batch_size=8, target_update_every=3, lr=0.01)
    initial = None
    for algo in train(cfg, 7):
        if initial is None:
            initial = [p.clone() for p in algo.target.parameters()]
        copied = algo.grad_steps % 3 == 0
        assert same(algo.target, algo.online) == copied, f"after {algo.grad_steps} gradient steps"
        if algo.grad_steps < 3:  # not copied yet: still the initial network
            assert all(torch.equal(p, q) for p, q in zip(algo.target.parameters(), initial))
    assert algo.grad_steps == 7


def test_polyak_averaging_moves_the_target_by_tau():
    cfg = DQNConfig(rollout_steps=2, warmup_steps=0, batch_size=8, tau=0.25, lr=0.01)
    steps = train(cfg, 2)
    algo = next(steps)
    before = [p.clone() for p in algo.target.parameters()]
    algo = next(steps)
    for old, new, online in zip(before, algo.target.parameters(), algo.online.parameters()):
        np.testing.assert_allclose(new.numpy(), (0.75 * old + 0.25 * online).detach().numpy(), rtol=1e-5, atol=1e-7)
    assert not same(algo.target, algo.online)


@pytest.mark.parametrize("double_q", [True, False])
def test_the_bootstrap_enters_the_iql_td_target(double_q, monkeypatch):
    # IQL's target is returns + discount * q_next: with zero returns and discount 1 the loss is the TD error between
    # Q(obs, a) = ONLINE_NEXT[0] = 1 and the bootstrapped value (2 with double Q, 9 without).
    env = marlkit.make("penalty-v0", num_envs=1, seed=0)
    algo = DQN(env, DQNConfig(double_q=double_q, huber_delta=0.0), seed=0)
    algo.online["agents"]["players"] = FixedQ(ONLINE_NEXT)
    algo.target["agents"]["players"] = FixedQ(TARGET_NEXT)
    batch = TransitionBatch({"players": transitions(4, 2, env.group_observation_space("players").shape[0])}, None, None)
    loss, _ = algo._loss(batch)
    bootstrap = 2.0 if double_q else 9.0
    assert loss.item() == pytest.approx(0.5 * (1.0 - bootstrap) ** 2)
