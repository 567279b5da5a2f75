"""The mutation tier: one-line bugs planted in a copy of the code, each of which its tests must catch.

Every entry of ``MUTANTS`` below is one deliberate bug in the core code — the kind a refactor could introduce
without anything crashing — and the tests that must fail because of it. For each, this tool copies ``src/``,
``tests/`` and ``pyproject.toml`` into a temporary directory (the working tree is never touched), applies the
mutation there, runs only that mutant's tests with ``PYTHONPATH`` pointing at the copy, and reports it

* **killed**: every one of its tests failed — good;
* **survived**: they all passed — a bug the suite does not see;
* **error**: anything else — the original snippet is missing or not unique, a listed test passed while others
  failed (each listed test claims to catch the bug), a node id does not exist (pytest status 4), collection failed
  (2), no test ran (5), or the run took longer than ``--timeout`` seconds.

Before any mutant the targeted tests are run once on the unmutated copy and must pass, so a test that fails for
another reason cannot pass for a kill. The exit status is 0 only if every mutant was killed.

List format: each entry is a ``Mutant(name, file, original, replacement, tests, bug)``:

``name``         a short unique id (``--only`` selects by it);
``file``         the path of the file to mutate, relative to the repository root (under ``src/``);
``original``     exact text that must occur exactly once in that file: one line or part of one (a few lines when
                 one is not unique; the mutation still changes one line);
``replacement``  what replaces it;
``tests``        pytest node ids (``tests/...py::test_name``, or one parametrisation ``...::test_name[id]``), each of
                 which must fail (an unparametrised id of a parametrised test: at least one of its cases);
``bug``          one line: the mistake this mutation stands for.

When code moves, update ``original`` here in the same change: a snippet that is no longer found is an error, so
the list cannot rot silently.

Usage: ``python tools/mutants.py [--only NAME ...] [--jobs N] [--timeout S] [--list]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
#: What is copied into the temporary tree.
COPIED = ("src", "tests", "pyproject.toml")
#: Set in the environment of every test run this tool starts (the tier's own pytest wrapper skips under it).
RUNNING_ENV = "MARLKIT_MUTANTS_RUNNING"


class Mutant(NamedTuple):
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    bug: str


PPO_LOSS = "tests/unit/test_ppo_loss.py"
PPO_BOOT = "tests/unit/test_ppo_bootstrap.py"
DQN = "tests/unit/test_dqn_targets.py"
RESUME = "tests/experiment/test_resume_stochastic.py"
ATOMIC = "tests/experiment/test_checkpoint_atomic.py"
ROUND_TRIP = (
    "tests/experiment/test_checkpoint_round_trip.py::"
    "test_a_learner_loaded_from_a_checkpoint_continues_as_the_one_that_saved_it"
)

MUTANTS: list[Mutant] = [
    # ------------------------------------------------------------------------------------------------- PPO
    Mutant(
        "ppo-entropy-times-zero",
        "src/marlkit/ops/losses.py",
        "total = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean",
        "total = policy_loss + value_coef * value_loss - 0 * entropy_coef * entropy_mean",
        (f"{PPO_LOSS}::test_the_entropy_bonus_is_subtracted_with_its_coefficient",),
        "the entropy bonus drops out of PPO's loss",
    ),
    Mutant(
        "fused-ppo-entropy-gradient-zero",
        "src/marlkit/ops/losses.py",
        "g_logp_all = (p_logp + probs) * (entropy_coef * w)",
        "g_logp_all = (p_logp + probs) * (0 * entropy_coef * w)",
        ("tests/unit/test_fast_update.py::test_categorical_ppo_loss_equals_autograd_through_ppo_loss",),
        "the categorical loss's written-out backward drops the entropy bonus's gradient",
    ),
    Mutant(
        "ppo-entropy-coef-not-passed",
        "src/marlkit/algorithms/ppo.py",
        "entropy_coef=cfg.entropy_coef,\n            )\n        logp, entropy",
        "entropy_coef=0 * cfg.entropy_coef,\n            )\n        logp, entropy",
        (
            f"{PPO_LOSS}::test_ppo_passes_its_config_to_the_loss",
            f"{PPO_LOSS}::test_the_entropy_bonus_raises_the_entropy_of_a_ppo_update",
        ),
        "PPO's fused categorical loss (the default for discrete actions) ignores its entropy_coef",
    ),
    Mutant(
        "ppo-entropy-coef-not-passed-generic",
        "src/marlkit/algorithms/ppo.py",
        "entropy_coef=cfg.entropy_coef,\n        )\n        with torch.no_grad():",
        "entropy_coef=0 * cfg.entropy_coef,\n        )\n        with torch.no_grad():",
        (f"{PPO_LOSS}::test_ppo_passes_its_config_to_the_loss",),
        "PPO's generic loss (continuous actions) ignores its entropy_coef",
    ),
    Mutant(
        "ppo-ratio-unclipped",
        "src/marlkit/ops/losses.py",
        "ratio.clamp(1 - clip, 1 + clip) * advantages",
        "ratio * advantages",
        (f"{PPO_LOSS}::test_the_ratio_is_clipped_on_both_sides_in_the_direction_the_advantage_favours",),
        "PPO's ratio is not clipped (plain policy gradient with importance weights)",
    ),
    Mutant(
        "ppo-ratio-clipped-above-only",
        "src/marlkit/ops/losses.py",
        "ratio.clamp(1 - clip, 1 + clip) * advantages",
        "ratio.clamp(max=1 + clip) * advantages",
        (f"{PPO_LOSS}::test_the_ratio_is_clipped_on_both_sides_in_the_direction_the_advantage_favours",),
        "the ratio is clipped on one side only",
    ),
    Mutant(
        "ppo-value-clip-takes-min",
        "src/marlkit/ops/losses.py",
        "value_loss = torch.max(value_loss, value_error(",
        "value_loss = torch.min(value_loss, value_error(",
        (f"{PPO_LOSS}::test_value_clipping_takes_the_worse_of_the_clipped_and_unclipped_errors",),
        "the clipped value loss takes the smaller error, not the larger",
    ),
    Mutant(
        "ppo-truncation-as-termination",
        "src/marlkit/algorithms/ppo.py",
        "            batch.terminated[g],\n",
        "            batch.terminated[g] | batch.truncated[g],\n",
        (
            f"{PPO_BOOT}::test_truncation_bootstraps_from_the_final_observation_and_termination_does_not",
            f"{PPO_BOOT}::test_collected_truncations_bootstrap_from_final_obs_not_from_the_next_episode",
        ),
        "PPO treats a time limit as a terminal state (no bootstrap at truncation)",
    ),
    Mutant(
        "ppo-generator-not-restored",
        "src/marlkit/algorithms/ppo.py",
        'self.generator.set_state(state["generator"])',
        "pass",
        (ROUND_TRIP + "[ippo]",),
        "PPO's minibatch-shuffling generator is missing from its checkpoint",
    ),
    # ---------------------------------------------------------------------------------- returns, collection, env
    Mutant(
        "gae-truncation-as-termination",
        "src/marlkit/ops/returns.py",
        "deltas = rewards + gamma * not_term * next_values - values",
        "deltas = rewards + gamma * not_done * next_values - values",
        (
            "tests/unit/test_returns.py::test_gae_truncation_bootstraps_but_does_not_leak_into_next_episode",
            f"{PPO_BOOT}::test_truncation_bootstraps_from_the_final_observation_and_termination_does_not",
        ),
        "GAE stops bootstrapping at truncation",
    ),
    Mutant(
        "gae-lambda-for-gamma",
        "src/marlkit/ops/returns.py",
        "deltas = rewards + gamma * not_term * next_values - values",
        "deltas = rewards + lam * not_term * next_values - values",
        ("tests/unit/test_returns.py::test_gae_single_episode_by_hand",),
        "GAE's TD error discounts with lambda instead of gamma",
    ),
    Mutant(
        "collector-drops-final-obs",
        "src/marlkit/collect.py",
        'buf.next_obs[g][t] = info["final_obs"][g]',
        "buf.next_obs[g][t] = obs[g]",
        (f"{PPO_BOOT}::test_collected_truncations_bootstrap_from_final_obs_not_from_the_next_episode",),
        "a truncated episode bootstraps from the next episode's first observation",
    ),
    Mutant(
        "autoreset-overwrites-final-obs",
        "src/marlkit/envs/base.py",
        "            obs = self._observe()\n        self._add_masks(info)",
        '            obs = info["final_obs"] = self._observe()\n        self._add_masks(info)',
        (
            "tests/envs/test_conformance.py::test_autoreset_starts_a_fresh_episode[spread-v0]",
            f"{PPO_BOOT}::test_collected_truncations_bootstrap_from_final_obs_not_from_the_next_episode",
        ),
        "autoreset reports the next episode's first observation as final_obs",
    ),
    Mutant(
        "replay-truncation-as-termination",
        "src/marlkit/data/replay.py",
        '"terminated": rollout.terminated[g],',
        '"terminated": rollout.terminated[g] | rollout.truncated[g],',
        ("tests/unit/test_replay.py::test_termination_stops_bootstrapping_truncation_does_not",),
        "the replay stores truncation as termination (value-based learners stop bootstrapping at time limits)",
    ),
    # ------------------------------------------------------------------------------------------- value-based
    Mutant(
        "dqn-target-never-updated",
        "src/marlkit/algorithms/dqn.py",
        "self.target.load_state_dict(self.online.state_dict())",
        "pass",
        (f"{DQN}::test_the_target_network_is_copied_every_target_update_every_gradient_steps",),
        "the target network keeps its initial weights",
    ),
    Mutant(
        "dqn-double-q-argmax-from-target",
        "src/marlkit/algorithms/dqn.py",
        "chooser = net(b.next_obs) if self.config.double_q else q_next_target",
        "chooser = q_next_target",
        (f"{DQN}::test_double_q_picks_with_the_online_network_and_values_with_the_target",),
        "double DQN picks the next action with the target network (plain DQN's overestimation)",
    ),
    Mutant(
        "vdn-mean-not-sum",
        "src/marlkit/nn/mixers.py",
        "return q.sum(-1)",
        "return q.mean(-1)",
        ("tests/unit/test_mixers.py::test_vdn_mixer_is_the_sum",),
        "VDN mixes by the mean instead of the sum",
    ),
    Mutant(
        "tabular-never-learns",
        "src/marlkit/algorithms/tabular.py",
        "q[idx] += cfg.lr * td[keep]",
        "q[idx] += 0 * td[keep]",
        ("tests/learning/test_tabular_learns.py::test_without_penalty_every_trial_coordinates_on_an_optimum",),
        "tabular learners (one table per copy) never update their Q-values",
    ),
    # ------------------------------------------------------------------------------------- runner, checkpoints
    Mutant(
        "env-generator-not-restored",
        "src/marlkit/collect.py",
        'self.env.np_random = restore_generator(state["env_rng"])',
        "pass",
        (
            f"{RESUME}::test_resuming_spread_twice_from_one_checkpoint_gives_identical_numbers",
            f"{RESUME}::test_a_resumed_run_resets_its_env_from_the_checkpointed_generator",
        ),
        "on resume the training env draws from a fresh unseeded generator",
    ),
    Mutant(
        "runner-one-collection-too-many",
        "src/marlkit/experiment/runner.py",
        "while self.env_steps < exp.steps:",
        "while self.env_steps <= exp.steps:",
        ("tests/experiment/test_runner.py::test_callbacks_see_every_event",),
        "the runner's env-step budget is off by one collection",
    ),
    Mutant(
        "checkpoint-not-atomic",
        "src/marlkit/core/checkpoint.py",
        'tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}"',
        "tmp = path",
        (
            f"{ATOMIC}::test_the_final_name_appears_only_complete",
            f"{ATOMIC}::test_a_write_that_fails_before_its_rename_leaves_the_previous_file_untouched",
        ),
        "checkpoints are written in place, so a crash mid-write leaves a torn file under the final name",
    ),
    # ------------------------------------------------------------------ game theory, populations, lifelong
    Mutant(
        "cfr-plus-without-the-floor",
        "src/marlkit/population/cfr.py",
        "np.maximum(self._regrets[rows], 0.0)\n            self._cumulative[rows] += weight * own_reach[rows, None] * self._current[rows]\n            self._current = regret_matching(",
        "np.minimum(self._regrets[rows], np.inf)\n            self._cumulative[rows] += weight * own_reach[rows, None] * self._current[rows]\n            self._current = regret_matching(",
        ("tests/unit/test_cfr.py::test_cfr_plus_reaches_nash_conv_below_0_001_on_kuhn_in_200_iterations",),
        "CFR+ keeps negative cumulative regrets (plain regret matching under CFR+'s name)",
    ),
    Mutant(
        "regret-matching-on-absolute-regrets",
        "src/marlkit/population/cfr.py",
        "positive = np.where(legal, np.maximum(regrets, 0.0), 0.0)",
        "positive = np.where(legal, np.abs(regrets), 0.0)",
        ("tests/unit/test_cfr.py::test_regret_matching",),
        "regret matching plays actions with negative regret too",
    ),
    Mutant(
        "happo-inactive-agents-change-the-factor",
        "src/marlkit/algorithms/happo.py",
        "torch.exp((new_logp - old_logp) * active)",
        "torch.exp(new_logp - old_logp)",
        ("tests/unit/test_happo.py::test_correction_factor_multiplies_the_ratio_of_active_agents",),
        "HAPPO's correction factor multiplies in the ratios of agents that did not act",
    ),
    Mutant(
        "pfsp-hard-is-linear",
        "src/marlkit/population/pool.py",
        "return (1.0 - p) ** 2",
        "return 1.0 - p",
        ("tests/unit/test_pool.py::test_pfsp_weights_on_a_hand_built_table",),
        "PFSP's hard weighting loses its square (opponents the learner beats are drawn too often)",
    ),
    Mutant(
        "elo-expected-score-reversed",
        "src/marlkit/population/ratings.py",
        "10.0 ** ((r_j - r_i) / scale)",
        "10.0 ** ((r_i - r_j) / scale)",
        ("tests/unit/test_ratings.py::test_elo_matches_hand_computed_updates",),
        "Elo expects the lower-rated player to win",
    ),
    Mutant(
        "snd-counts-self-pairs",
        "src/marlkit/metrics/diversity.py",
        "return float(d[np.triu_indices(n, 1)].mean())",
        "return float(d.mean())",
        ("tests/unit/test_diversity.py::test_snd_is_the_mean_over_pairs_and_observations",),
        "SND averages over every ordered pair including an agent with itself",
    ),
    Mutant(
        "w2-ignores-the-deviations",
        "src/marlkit/metrics/diversity.py",
        "((sa - sb) ** 2).sum(-1))",
        "0 * ((sa - sb) ** 2).sum(-1))",
        ("tests/unit/test_diversity.py::test_gaussian_w2_closed_form",),
        "the Gaussian Wasserstein-2 distance drops its standard-deviation term",
    ),
    Mutant(
        "cw-forgetting-sign",
        "src/marlkit/lifelong/metrics.py",
        "out: np.ndarray = np.diag(m) - m[-1]",
        "out: np.ndarray = m[-1] - np.diag(m)",
        ("tests/lifelong/test_lifelong_metrics.py::test_continual_world_forgetting",),
        "Continual World's forgetting is computed as final minus end-of-task (its sign flipped)",
    ),
    Mutant(
        "meal-best-before-training",
        "src/marlkit/lifelong/metrics.py",
        "best = np.array([h[starts[i] :, i].max() for i in range(t)])",
        "best = np.array([h[:, i].max() for i in range(t)])",
        ("tests/lifelong/test_lifelong_metrics.py::test_meal_forgetting_uses_the_best_value_after_training_starts",),
        "MEAL's best value counts evaluations from before the task's own training began",
    ),
]


class Outcome(NamedTuple):
    mutant: Mutant
    status: str  # "killed", "survived" or "error"
    seconds: float
    detail: str


def check_list(mutants: list[Mutant], root: Path = ROOT) -> list[str]:
    """Problems with the list itself: duplicate names, missing files, snippets not found exactly once."""
    problems, seen = [], set()
    for m in mutants:
        if m.name in seen:
            problems.append(f"{m.name}: duplicate name")
        seen.add(m.name)
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        count = path.read_text().count(m.original)
        if count != 1:
            problems.append(
                f"{m.name}: the original snippet occurs {count} times in {m.file} (must be exactly once):"
                f" {m.original!r}"
            )
        if m.original == m.replacement:
            problems.append(f"{m.name}: the replacement equals the original")
        if not m.tests:
            problems.append(f"{m.name}: no tests")
    return problems


def make_copy(root: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")
    for name in COPIED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=ignore)
        else:
            shutil.copy2(src, into / name)
    return into


def child_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not the outer pytest's xdist state
    env.update(
        {
            "PYTHONPATH": str(tree / "src"),
            "PYTHONDONTWRITEBYTECODE": "1",
            RUNNING_ENV: "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "COLUMNS": "200",
        }
    )
    return env


def run_pytest(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int | None, str]:
    """pytest's exit status on ``tests`` inside ``tree`` (None on timeout), and its output."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:xdist",
        "--no-header",
        "-rf",
        *tests,
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=child_env(tree), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out
    return proc.returncode, proc.stdout + proc.stderr


def run_mutant(m: Mutant, tree: Path, timeout: float) -> Outcome:
    path = tree / m.file
    original = path.read_text()
    start = time.perf_counter()
    try:
        path.write_text(original.replace(m.original, m.replacement, 1))
        code, out = run_pytest(tree, m.tests, timeout)
    finally:
        path.write_text(original)
    seconds = time.perf_counter() - start
    if code == 0:
        return Outcome(m, "survived", seconds, "    the targeted tests passed with the mutation in place")
    if code != 1:
        why = f"timed out after {timeout:.0f} s" if code is None else f"pytest exit status {code}"
        return Outcome(m, "error", seconds, f"    {why}:\n{tail(out)}")
    # pytest's short summary names each failed test and what it failed on
    failed = [line.removeprefix("FAILED ") for line in out.splitlines() if line.startswith("FAILED ")]
    ids = [f.split(" - ")[0] for f in failed]
    missed = [t for t in m.tests if not any(i == t or i.startswith(t + "[") for i in ids)]
    detail = "\n".join(f"    by {line}" for line in failed)
    if missed:  # every listed test claims to catch this bug: one that does not is an error in the list
        return Outcome(m, "error", seconds, detail + "\n    but these listed tests passed: " + ", ".join(missed))
    return Outcome(m, "killed", seconds, detail)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once, each in its own copy (default 1)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per test run before it is an error")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = parser.parse_args(argv)

    problems = check_list(MUTANTS)
    mutants = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            known = ", ".join(m.name for m in MUTANTS)
            print(f"unknown mutant(s) {', '.join(unknown)}; known: {known}", file=sys.stderr)
            return 2
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:34} {m.file}: {m.bug}")
        return 0
    if problems:
        print("the mutant list does not match the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"--jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="marlkit-mutants-") as tmp:
        trees = [make_copy(ROOT, Path(tmp) / f"tree{i}") for i in range(min(args.jobs, len(mutants)))]
        # The copy, not the working tree (nor an installed marlkit), is what the tests import.
        probe = subprocess.run(
            [sys.executable, "-c", "import marlkit; print(marlkit.__file__)"],
            cwd=trees[0],
            env=child_env(trees[0]),
            capture_output=True,
            text=True,
            check=False,
        )
        if not probe.stdout.strip().startswith(str(trees[0])):
            print(
                f"the copy's marlkit is not the one imported: {probe.stdout.strip() or probe.stderr}", file=sys.stderr
            )
            return 2
        targeted = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
        code, out = run_pytest(trees[0], targeted, args.timeout * 2)
        if code != 0:
            print(
                f"the targeted tests do not pass without mutations (pytest exit status {code}):\n{tail(out, 40)}",
                file=sys.stderr,
            )
            return 2
        baseline = time.perf_counter() - started
        print(f"baseline: {len(targeted)} targeted tests pass unmutated ({baseline:.0f} s)")

        free = list(trees)

        def job(m: Mutant) -> Outcome:
            tree = free.pop()
            try:
                return run_mutant(m, tree, args.timeout)
            finally:
                free.append(tree)

        with ThreadPoolExecutor(max_workers=len(trees)) as pool:
            outcomes = []
            for o in pool.map(job, mutants):
                outcomes.append(o)
                print(f"{o.status:>8}  {o.mutant.name:34} {o.seconds:5.1f} s  {o.mutant.bug}", flush=True)
                if o.detail:
                    print(o.detail)

    bad = [o for o in outcomes if o.status != "killed"]
    total = time.perf_counter() - started
    print(
        f"{len(outcomes) - len(bad)}/{len(outcomes)} mutants killed in {total:.0f} s"
        + (f"; not killed: {', '.join(o.mutant.name for o in bad)}" if bad else "")
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
