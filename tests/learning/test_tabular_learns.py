"""Tabular independent learners and joint-action learners on Claus & Boutilier's games (1998).

Each test runs many independent trials side by side (``tables_per_copy``: one env copy = one pair of learners)
and asserts where the population of trials ends up — the paper's findings are about likelihoods, not single runs.
The full table over schedules and penalties is ``benchmarks/claus_boutilier.py``.
"""

import numpy as np
import pytest

import marlkit
from marlkit.algorithms.tabular import JointActionLearner, TabularConfig, TabularQ
from marlkit.collect import Collector
from marlkit.envs.matrix import MatrixGame, penalty_payoffs
from marlkit.experiment.runner import learn

TRIALS = 100
LEARNERS = {"iql-tabular": TabularQ, "jal": JointActionLearner}
#: The penalty game with k = 0, its actions reordered (b, a, c) so that the safe (b, b) is action 0 and the optima
#: (a, a), (c, c) are (1, 1), (2, 2): an all-zero table's argmax picks action 0, so ties do not favour an optimum.
SAFE_FIRST = [1, 0, 2]
PENALTY_0_SAFE_FIRST = np.asarray(penalty_payoffs(0))[SAFE_FIRST][:, SAFE_FIRST]


def train_trials(algo, env_id, plays=1000, seed=0, decay=0.99, **kwargs):
    """``TRIALS`` independent learner pairs, ``plays`` plays each, Boltzmann temperature 16 * ``decay`` ** play;
    returns (learner, env, greedy joint actions). ``env_id`` may also be a payoff table."""
    if isinstance(env_id, str):
        env = marlkit.make(env_id, num_envs=TRIALS, seed=seed, **kwargs)
    else:
        env = MatrixGame(env_id, num_envs=TRIALS, seed=seed, **kwargs)
    cfg = TabularConfig(gamma=0.0, temperature_decay=decay, tables_per_copy=True)
    learner = LEARNERS[algo](env, cfg, seed=seed)
    learn(learner, Collector(env, learner, 1, seed=seed), plays)
    obs, _ = env.reset(seed=seed + 1)
    return learner, env, learner.greedy_joint_action("players", obs["players"])


def share(greedy, *cells):
    return float(np.mean([tuple(g) in cells for g in greedy]))


@pytest.mark.parametrize("algo", LEARNERS)
def test_without_penalty_every_trial_coordinates_on_an_optimum(algo):
    # penalty game with k = 0: (a, a) and (c, c) pay 10, miscoordination costs nothing. C&B: both learner types
    # converge to an optimal equilibrium. With the safe action first, untrained tables play the safe (b, b).
    _, _, untrained = train_trials(algo, PENALTY_0_SAFE_FIRST, plays=0)
    assert share(untrained, (0, 0)) == 1.0
    _, _, greedy = train_trials(algo, PENALTY_0_SAFE_FIRST)
    assert share(greedy, (1, 1), (2, 2)) >= 0.95


@pytest.mark.parametrize("algo", LEARNERS)
def test_a_large_penalty_drives_trials_to_the_safe_equilibrium(algo):
    # k = -100: exploring around (a, a) or (c, c) is so costly that most trials settle on the safe (b, b) worth 2
    # (C&B: the likelihood of reaching the optimum falls as k decreases).
    _, _, mild = train_trials(algo, "penalty-v0", k=-10)
    _, _, harsh = train_trials(algo, "penalty-v0", k=-100)
    assert share(harsh, (1, 1)) >= 0.6
    assert share(harsh, (0, 0), (2, 2)) < share(mild, (0, 0), (2, 2)) - 0.3


@pytest.mark.parametrize("algo", LEARNERS)
def test_the_climbing_game_ends_at_a_suboptimal_equilibrium(algo):
    # Climbing game: the optimum (a, a) = 11 is guarded by -30 penalties; C&B's learners settle on a suboptimal
    # equilibrium, (b, b) = 7 or (c, c) = 5. With a slowly cooling temperature (0.998 per play; a fast schedule
    # freezes many trials at the non-equilibrium (b, c), see benchmarks/results/claus_boutilier.md) most trials end
    # at one of the two, few at the optimum.
    _, _, greedy = train_trials(algo, "climbing-v0", plays=2000, decay=0.998)
    assert share(greedy, (0, 0)) <= 0.3
    assert max(share(greedy, (1, 1)), share(greedy, (2, 2))) >= 0.6


def test_joint_action_values_converge_to_the_payoffs():
    # A JAL's Q_i(s, a_i, a_-i) of the joint action it ends up playing, hundreds of times near-greedily, is that
    # cell of the payoff table (gamma = 0, so the value is the immediate payoff). Checked for both agents.
    learner, env, greedy = train_trials("jal", "penalty-v0", k=-10)
    q = learner.groups["players"]["q"][:, :, 0]  # (trials, agents, a_i, a_-i) in the one state of the game
    trials = np.arange(TRIALS)
    mine, other = greedy[:, 0], greedy[:, 1]
    learned = np.stack([q[trials, 0, mine, other], q[trials, 1, other, mine]], axis=1)
    payoff = env.payoffs[mine, other, 0]
    assert np.mean(np.abs(learned - payoff[:, None]) < 0.1) >= 0.95


def test_tables_round_trip_through_a_checkpoint():
    learner, env, greedy = train_trials("jal", "climbing-v0", plays=100)
    state = learner.checkpoint_state()
    fresh = JointActionLearner(env, learner.config, seed=123)
    fresh.load_checkpoint_state(state)
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(fresh.greedy_joint_action("players", obs["players"]), greedy)
    # the schedules' clock is the run's, told again on resume: the tables alone do not carry it
    fresh.set_progress(learner.progress)
    assert fresh.plays == learner.plays == 100 and fresh.temperature() == learner.temperature()


def test_state_spaces_too_large_for_a_table_are_refused_with_their_size():
    env = marlkit.make("spread-v0", num_envs=2, seed=0)
    from marlkit.algorithms.registry import algo_spec, unsupported_reason

    assert "not countable" in unsupported_reason(algo_spec("jal"), env)
    small = TabularConfig(max_states=3)
    learner = TabularQ(marlkit.make("iterated-prisoners-dilemma-v0", num_envs=4, seed=0), small, seed=0)
    obs = np.eye(6, dtype=np.float32)[None, :, :].repeat(2, 0)[:, :4]  # 4 distinct observations > 3 rows
    with pytest.raises(ValueError, match="more than 3 distinct observations"):
        learner.groups["players"]["index"](obs)
    from gymnasium import spaces

    from marlkit.algorithms.tabular import space_size

    assert space_size(spaces.MultiDiscrete([10, 10, 10])) == 1000 and space_size(spaces.Box(0, 1, (3,))) is None


def test_independent_learners_solve_the_two_step_game():
    # A small env with states (three one-hot observations, finite_observations): with gamma = 1 the Q of state 1
    # bootstraps from the best value of 2A (7) or 2B (8), and independent tables coordinate on (B, B) in 2B.
    env = marlkit.make("two-step-v0", num_envs=TRIALS, seed=0)
    learner = TabularQ(env, TabularConfig(gamma=1.0, temperature_decay=0.998, tables_per_copy=True), seed=0)
    learn(learner, Collector(env, learner, 2, seed=0), 1000)
    obs, info = env.reset(seed=1)
    total = np.zeros(TRIALS)
    for _ in range(2):  # one greedy episode in every trial
        actions, _ = learner.act(obs, None, info, explore=False)
        obs, rewards, _, _, info = env.step(actions)
        total += rewards["agents"][:, 0]
    assert np.mean(total == 8.0) >= 0.9
