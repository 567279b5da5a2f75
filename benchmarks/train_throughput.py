"""End-to-end training throughput (rollout + update) on MPE simple_spread: marlkit against JaxMARL and BenchMARL.

One env-step is one copy of the 3-agent task advanced one step. Every implementation trains with the same
hyper-parameters (``HP`` below: JaxMARL's IPPO-FF MPE defaults with a constant learning rate) and is timed by the
wall clock over whole iterations (collect ``num_envs x rollout_steps`` env-steps, then ``epochs x minibatches``
gradient steps) after a warm-up iteration. Each implementation runs in its own process:

* marlkit MAPPO and IPPO (``marlkit.algorithms.ppo``) on ``spread-v0``: collection with one torch thread, the update
  with ``--update-threads`` (default 1 and 2, reported separately: on 2 shared cores oversubscription is costly);
* JaxMARL's IPPO-FF baseline (``baselines/IPPO/ippo_ff_mpe.py`` of the FLAIROx/JaxMARL repository, not in the pip
  package) on ``MPE_simple_spread_v3``, jitted on the CPU; compile time is reported separately and the training
  loop, compiled for a fixed number of updates, is run once to warm up and then timed. Give its ``baselines``
  folder with ``--jaxmarl-baselines DIR`` or ``JAXMARL_BASELINES``;
* BenchMARL's MAPPO on PettingZoo ``simple_spread_v3``, taken from mpe2 (PettingZoo 1.27 dropped
  ``pettingzoo.mpe``); timed from the end of its first iteration to the end of its last (``--quick``: its one
  iteration, warm-up included).

Off-policy learners (``_offpolicy.py``): marlkit's IQL, VDN and QMIX against JaxMARL's VDN-FF
(``baselines/QLearning/vdn_ff.py``), all at one gradient step per 32 env-steps (``Q_HP``), in the same run.

JaxMARL's program is kept in JAX's persistent compilation cache (``--jax-cache``), so from the second run on its
compile step mostly loads it; ``--quick`` then takes one to two minutes on a loaded 2-core machine.

``--baseline-src DIR`` also times marlkit from another checkout's ``src`` folder (e.g. ``git worktree add
/tmp/base COMMIT``, then ``--baseline-src /tmp/base/src``) in the same run, alternating with this checkout's
measurements, and reports this checkout's rate as a ratio of the baseline's (``x_baseline``): whether a change
slowed training down, measured under the same load.

A peer that is not installed (or whose baselines folder is not given) is skipped with the reason. Peers may live in
another virtual environment: ``--peers-python PATH``. ``--profile`` prints where marlkit's time goes: env.step,
policy inference (``act``), the collector's own bookkeeping, and the update split by torch op.

    python benchmarks/train_throughput.py [--quick] [--profile] [--json benchmarks/results/train_throughput.json]
        [--jaxmarl-baselines DIR] [--peers-python /path/to/venv-peers/bin/python] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json
from _offpolicy import Q_DEVIATIONS, Q_ENV_STEPS_PER_UPDATE, Q_HP, run_jaxmarl_q, run_marlkit_q

#: The one setting every implementation is configured to (JaxMARL's ippo_ff_mpe.yaml, learning rate not annealed).
HP: dict[str, Any] = {
    "task": "MPE simple_spread, 3 agents, 3 landmarks, 25-step episodes, local_ratio 0.5, discrete actions",
    "num_envs": 16,
    "rollout_steps": 128,
    "epochs": 4,
    "minibatches": 4,
    "hidden": "64x64",
    "activation": "tanh",
    "lr": 2.5e-4,
    "lr_anneal": False,
    "adam_eps": 1e-5,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip": 0.2,
    "value_clip": 0.2,
    "entropy_coef": 0.01,
    "value_coef": 0.5,
    "max_grad_norm": 0.5,
    "value_loss": "squared error",
    "parameter_sharing": True,
    "agent_id": False,
    "value_norm": False,
}
ENV_STEPS_PER_ITER = HP["num_envs"] * HP["rollout_steps"]

#: marlkit's off-policy learners measured against JaxMARL's VDN-FF (``_offpolicy.py``).
OFF_POLICY = ("iql", "vdn", "qmix")

#: Where an implementation cannot follow ``HP`` exactly (none of these changes the work done per env-step much).
DEVIATIONS = {
    "marlkit": "advantages normalised over the whole batch (JaxMARL: per minibatch)",
    "jaxmarl": "MPE episodes end after 26 steps (its done logic); advantages normalised per minibatch; "
    "its per-update host callback to wandb.log left out",
    "benchmarl": "no value clipping and no advantage normalisation (BenchMARL's MAPPO fixes both); "
    "Adam eps 1e-5 set explicitly",
}


def installed(*packages: str) -> str:
    """``"pkg version, ..."`` of the packages a worker ran with (peers may live in another environment)."""
    import contextlib
    import importlib.metadata

    out = []
    for p in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out.append(f"{p} {importlib.metadata.version(p)}")
    return ", ".join(out)


# ------------------------------------------------------------------------------------------------------ marlkit
def marlkit_setup(algo: str, seed: int = 0) -> tuple[Any, Any]:
    """A PPO learner configured to ``HP`` and its collector on spread-v0."""
    import torch

    import marlkit
    from marlkit.algorithms.ppo import PPO, PPOConfig
    from marlkit.collect import Collector

    torch.manual_seed(seed)
    cfg = PPOConfig(
        centralised_critic=algo == "mappo",
        rollout_steps=HP["rollout_steps"],
        epochs=HP["epochs"],
        minibatches=HP["minibatches"],
        lr=HP["lr"],
        gamma=HP["gamma"],
        gae_lambda=HP["gae_lambda"],
        clip=HP["clip"],
        value_clip=HP["value_clip"],
        entropy_coef=HP["entropy_coef"],
        value_coef=HP["value_coef"],
        huber_delta=0.0,
        max_grad_norm=HP["max_grad_norm"],
        hidden=tuple(int(h) for h in HP["hidden"].split("x")),
        activation=HP["activation"],
        share_parameters=HP["parameter_sharing"],
        agent_id=HP["agent_id"],
        value_norm=HP["value_norm"],
    )
    env = marlkit.make("spread-v0", num_envs=HP["num_envs"], seed=seed)
    learner = PPO(env, cfg, seed=seed)
    return learner, Collector(env, learner, cfg.rollout_steps, seed=seed)


def run_marlkit(algo: str, update_threads: int, seconds: float, profile: bool) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # acting runs in NumPy on 48 rows: one BLAS thread (the runner does so too)
    learner, collector = marlkit_setup(algo)
    timers = {"env_step": 0.0, "act": 0.0}
    if profile:  # wrap the two calls the collector makes per step; everything else in collect() is bookkeeping

        def timed(name: str, fn: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    timers[name] += time.perf_counter() - start

            return wrapper

        collector.env.step = timed("env_step", collector.env.step)
        learner.act = timed("act", learner.act)

    def iteration() -> tuple[float, float]:
        start = time.perf_counter()
        torch.set_num_threads(1)  # acting on 48 rows at a time: more threads only add synchronisation
        rollout, _ = collector.collect()
        mid = time.perf_counter()
        torch.set_num_threads(update_threads)
        learner.update(rollout)
        return mid - start, time.perf_counter() - mid

    iteration()  # warm-up
    for k in timers:
        timers[k] = 0.0
    load = os.getloadavg()[0]
    iters, collect_s, update_s = 0, 0.0, 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        c, u = iteration()
        iters, collect_s, update_s = iters + 1, collect_s + c, update_s + u
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    out = {
        "impl": "marlkit",
        "algo": algo,
        "threads": f"1 collect / {update_threads} update",
        "packages": installed("marlkit", "torch", "numpy"),
        "env_steps_per_s": iters * ENV_STEPS_PER_ITER / wall,
        "env_steps": iters * ENV_STEPS_PER_ITER,
        "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "load_avg_1min": load,
        "collect_ms_per_iter": 1e3 * collect_s / iters,
        "update_ms_per_iter": 1e3 * update_s / iters,
    }
    if profile:
        out["profile"] = {
            "env_step_ms": 1e3 * timers["env_step"] / iters,
            "act_ms": 1e3 * timers["act"] / iters,
            "collector_other_ms": 1e3 * (collect_s - timers["env_step"] - timers["act"]) / iters,
            "update_ms": 1e3 * update_s / iters,
            "update_ops": profile_update(learner, collector, update_threads),
        }
    return out


def profile_update(learner: Any, collector: Any, threads: int, top: int = 8) -> list[dict[str, Any]]:
    """Self CPU time of the torch ops of a few updates, the costliest ``top`` and the rest, per update."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    rollout, _ = collector.collect()
    torch.set_num_threads(threads)
    n = 3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            learner.update(rollout)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [
        {
            "op": e.key,
            "calls": e.count // n,
            "self_ms": e.self_cpu_time_total / 1e3 / n,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:top]
    ]
    rest = sum(e.self_cpu_time_total for e in events[top:])
    rows.append(
        {
            "op": "(all other ops)",
            "calls": sum(e.count for e in events[top:]) // n,
            "self_ms": rest / 1e3 / n,
            "share": rest / total,
        }
    )
    return rows


# ------------------------------------------------------------------------------------------- time to a return
#: Greedy per-agent returns on spread-v0 whose first crossing is timed (the issue's floors: -12 in 45 s, -10 in 90 s).
RETURN_TARGETS = (-15.0, -12.0, -10.0)
#: Overrides of the preset for the time-to-return runs (see ``--time-to-return-set``).
TIME_TO_RETURN_SETS: tuple[str, ...] = ()


class _Enough(Exception):
    """Raised by ``ReturnClock`` to end a run once its training time is spent."""


class ReturnClock:
    """Runner callback: the training time (wall clock minus the periodic evaluations) and env-steps at which the
    greedy return first reaches each target; stops the run after ``seconds`` of training. The training CPU time
    (the process's, evaluations left out) is kept beside it: on a shared machine the wall clock also measures how
    much of a core the run was given, the CPU time what it would take on a core of its own."""

    def __init__(self, runner: Any, seconds: float) -> None:
        self.seconds, self.eval_s, self.eval_cpu_s, self.points = seconds, 0.0, 0.0, []
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.cpu_points: list[float] = []
        evaluate = runner.evaluate

        def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
            self.eval_start, self.eval_cpu_start = time.perf_counter(), time.process_time()
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.eval_s += time.perf_counter() - self.eval_start
                self.eval_cpu_s += time.process_time() - self.eval_cpu_start

        runner.evaluate = timed_evaluate

    def on_eval(self, runner: Any, results: dict[str, float]) -> None:
        train_s = self.eval_start - self.start - self.eval_s
        self.points.append((train_s, runner.env_steps, results["eval/episode_return"]))
        self.cpu_points.append(self.eval_cpu_start - self.cpu_start - self.eval_cpu_s)
        if train_s > self.seconds:
            raise _Enough


def run_time_to_return(
    seed: int, seconds: float, eval_every: int, episodes: int, sets: list[str] | None = None
) -> dict[str, Any]:
    """MAPPO with its spread-v0 preset (what ``marlkit train mappo spread-v0`` runs) and ``sets`` over it
    (``"algo.epochs=5"``, as ``--set`` takes them), one torch thread, greedy evaluations every ``eval_every``
    env-steps; the training time to each of ``RETURN_TARGETS``."""
    import torch

    from marlkit.experiment.run import make_run_config
    from marlkit.experiment.runner import Runner

    torch.set_num_threads(1)
    cfg = make_run_config(
        "mappo",
        "spread-v0",
        sets=sets or [],
        steps=10**9,
        seed=seed,
        eval_every=eval_every,
        eval_episodes=episodes,
        log_every=10**9,
        checkpoint_every=0,
        gif=False,
        progress=False,
        torch_threads=1,
        out=tempfile.mkdtemp(prefix="marlkit_ttr_"),
    )
    runner = Runner(cfg)
    clock = ReturnClock(runner, seconds)
    runner.callbacks.append(clock)
    load, cpu_start = os.getloadavg()[0], time.process_time()
    clock.start, clock.cpu_start = time.perf_counter(), time.process_time()
    with contextlib.suppress(_Enough):
        runner.run()
    wall = time.perf_counter() - clock.start
    out: dict[str, Any] = {
        "impl": "marlkit",
        "algo": "mappo",
        "kind": "time_to_return",
        "env": "spread-v0",
        "seed": seed,
        "sets": sets or [],
        "eval_every": eval_every,
        "eval_episodes": episodes,
        "train_s": clock.points[-1][0] if clock.points else 0.0,
        "env_steps": clock.points[-1][1] if clock.points else 0,
        "final_return": clock.points[-1][2] if clock.points else None,
        "cpu_per_wall": (time.process_time() - cpu_start) / wall,
        "load_avg_1min": load,
        "curve": [
            {"train_s": t, "train_cpu_s": c, "env_steps": n, "return": r}
            for (t, n, r), c in zip(clock.points, clock.cpu_points, strict=True)
        ],
    }
    for target in RETURN_TARGETS:
        hit = next(((t, n, c) for (t, n, r), c in zip(clock.points, clock.cpu_points) if r >= target), None)
        out[f"time_to_return[{target:g}]_s"] = hit[0] if hit else None
        out[f"cpu_time_to_return[{target:g}]_s"] = hit[2] if hit else None
        out[f"steps_to_return[{target:g}]"] = hit[1] if hit else None
    return out


# ------------------------------------------------------------------------------------------------------ JaxMARL
def find_jaxmarl_baseline(directory: str | None) -> Path | None:
    """``IPPO/ippo_ff_mpe.py`` under ``directory`` (the repository's ``baselines`` folder or the repository)."""
    if not directory:
        return None
    for candidate in (
        Path(directory) / "IPPO" / "ippo_ff_mpe.py",
        Path(directory) / "baselines" / "IPPO" / "ippo_ff_mpe.py",
    ):
        if candidate.is_file():
            return candidate
    return None


def run_jaxmarl(baselines: str | None, threads: int, seconds: float, cache: str | None) -> dict[str, Any]:
    script = find_jaxmarl_baseline(baselines)
    if script is None:
        return {
            "skipped": "JaxMARL's baselines folder not given or without IPPO/ippo_ff_mpe.py (--jaxmarl-baselines "
            "DIR or JAXMARL_BASELINES; the folder 'baselines' of github.com/FLAIROx/JaxMARL)"
        }
    if threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import importlib.util
    import types

    try:
        import jax
        import yaml
    except ImportError as err:
        return {"skipped": f"jax not importable: {err}"}
    if importlib.util.find_spec("wandb") is None:  # the baseline imports wandb to log; a stand-in if not installed
        sys.modules["wandb"] = types.SimpleNamespace(log=lambda *a, **k: None, init=lambda *a, **k: None)
    spec = importlib.util.spec_from_file_location("jaxmarl_ippo_ff_mpe", script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        return {"skipped": f"JaxMARL baseline not importable: {err}"}
    # Its per-update logging is a host callback to wandb.log; without wandb it does nothing, and a program with a
    # host callback cannot be stored in JAX's compilation cache, so leave the callback out.
    quiet_jax = types.ModuleType("jax")
    quiet_jax.__dict__.update(vars(jax))
    quiet_jax.experimental = types.SimpleNamespace(io_callback=lambda *a, **k: None)
    module.jax = quiet_jax
    if cache:  # JAX's persistent compilation cache: a second run loads the compiled program instead of compiling
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cached_before = len(os.listdir(cache)) if cache and os.path.isdir(cache) else 0

    config = yaml.safe_load((script.parent / "config" / "ippo_ff_mpe.yaml").read_text())
    config.update(
        {
            "ENV_NAME": "MPE_simple_spread_v3",
            "ENV_KWARGS": {},
            "NUM_ENVS": HP["num_envs"],
            "NUM_STEPS": HP["rollout_steps"],
            "UPDATE_EPOCHS": HP["epochs"],
            "NUM_MINIBATCHES": HP["minibatches"],
            "LR": HP["lr"],
            "ANNEAL_LR": HP["lr_anneal"],
            "GAMMA": HP["gamma"],
            "GAE_LAMBDA": HP["gae_lambda"],
            "CLIP_EPS": HP["clip"],
            "ENT_COEF": HP["entropy_coef"],
            "VF_COEF": HP["value_coef"],
            "MAX_GRAD_NORM": HP["max_grad_norm"],
            "ACTIVATION": HP["activation"],
        }
    )
    assert HP["clip"] == HP["value_clip"] and HP["hidden"] == "64x64"  # JaxMARL uses CLIP_EPS for both; 64x64 fixed
    # One compiled program runs ``updates`` whole iterations; size it to about ``seconds`` at ~15k env-steps/s.
    updates = max(2, round(seconds * 15_000 / ENV_STEPS_PER_ITER))
    config["TOTAL_TIMESTEPS"] = updates * ENV_STEPS_PER_ITER
    rng = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = jax.jit(module.make_train(config)).lower(rng).compile()
    compile_s = time.perf_counter() - start
    from_cache = bool(cache) and cached_before > 0 and len(os.listdir(cache)) == cached_before
    jax.block_until_ready(compiled(rng))  # warm-up: the first run of the compiled program
    load = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "impl": "jaxmarl",
        "algo": "ippo",
        "threads": "1 (XLA flags)" if threads == 1 else "all (XLA default)",
        "packages": installed("jaxmarl", "jax", "jaxlib", "flax", "optax", "distrax"),
        "env_steps_per_s": updates * ENV_STEPS_PER_ITER / wall,
        "env_steps": updates * ENV_STEPS_PER_ITER,
        "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "load_avg_1min": load,
        "compile_s": compile_s,
        "compile_from_cache": from_cache,
    }


# ---------------------------------------------------------------------------------------------------- BenchMARL
class BenchmarlClock:
    """A BenchMARL callback (its hooks, duck-typed; module level so BenchMARL can pickle it): time stamps at the
    end of every training phase, one per iteration."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.cpu: list[float] = []
        self.load: list[float] = []

    def __getstate__(self) -> dict[str, Any]:  # BenchMARL pickles its callbacks; nothing here needs to survive
        return {}

    def on_train_end(self, training_td: Any, group: str) -> None:
        self.ends.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.load.append(os.getloadavg()[0])

    def on_setup(self) -> None: ...
    def on_load_state_dict(self, state_dict: Any) -> None: ...
    def on_batch_collected(self, batch: Any) -> None: ...
    def on_train_step(self, batch: Any, group: str) -> None: ...
    def on_evaluation_end(self, rollouts: Any) -> None: ...
    def on_state_dict(self, state_dict: Any) -> None: ...


def run_benchmarl(threads: int, iterations: int) -> dict[str, Any]:
    try:
        import torch
        from benchmarl.algorithms import MappoConfig
        from benchmarl.environments import PettingZooTask
        from benchmarl.experiment import Experiment, ExperimentConfig
        from benchmarl.models.mlp import MlpConfig
        from mpe2 import all_modules as mpe2_modules
    except ImportError as err:
        return {"skipped": f"BenchMARL or mpe2 not importable: {err}"}
    import types

    # torchrl finds PettingZoo tasks in pettingzoo.utils.all_modules; PettingZoo 1.27 has no MPE, so serve mpe2's.
    sys.modules["pettingzoo.utils.all_modules"] = types.SimpleNamespace(
        all_environments=dict(mpe2_modules.mpe_environments)
    )
    torch.set_num_threads(threads)

    cfg = ExperimentConfig.get_from_yaml()
    folder = tempfile.mkdtemp(prefix="benchmarl_")
    for key, value in {
        "sampling_device": "cpu",
        "train_device": "cpu",
        "buffer_device": "cpu",
        "share_policy_params": True,
        "prefer_continuous_actions": False,
        "gamma": HP["gamma"],
        "lr": HP["lr"],
        "adam_eps": HP["adam_eps"],
        "clip_grad_norm": True,
        "clip_grad_val": HP["max_grad_norm"],
        "max_n_iters": iterations,
        "max_n_frames": None,
        "on_policy_collected_frames_per_batch": ENV_STEPS_PER_ITER,
        "on_policy_n_envs_per_worker": HP["num_envs"],
        "on_policy_n_minibatch_iters": HP["epochs"],
        "on_policy_minibatch_size": ENV_STEPS_PER_ITER // HP["minibatches"],
        "evaluation": False,
        "render": False,
        "loggers": [],
        "create_json": False,
        "save_folder": folder,
        "checkpoint_interval": 0,
        "checkpoint_at_end": False,
    }.items():
        setattr(cfg, key, value)
    algorithm = MappoConfig.get_from_yaml()
    algorithm.share_param_critic = True
    algorithm.clip_epsilon = HP["clip"]
    algorithm.entropy_coef = HP["entropy_coef"]
    algorithm.critic_coef = HP["value_coef"]
    algorithm.loss_critic_type = "l2"
    algorithm.lmbda = HP["gae_lambda"]
    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update({"max_cycles": 25, "N": 3, "local_ratio": 0.5})
    model = MlpConfig(
        num_cells=[int(h) for h in HP["hidden"].split("x")], activation_class=torch.nn.Tanh, layer_class=torch.nn.Linear
    )
    clock = BenchmarlClock()
    experiment = Experiment(
        task=task, algorithm_config=algorithm, model_config=model, seed=0, config=cfg, callbacks=[clock]
    )
    start, cpu_start, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    experiment.run()
    if iterations > 1:  # time from the end of the first iteration (the warm-up) to the end of the last
        start, cpu_start, load = clock.ends[0], clock.cpu[0], clock.load[0]
    measured = iterations - 1 if iterations > 1 else 1
    wall, cpu = clock.ends[-1] - start, clock.cpu[-1] - cpu_start
    return {
        "impl": "benchmarl",
        "algo": "mappo",
        "threads": str(threads),
        "warm_up": iterations > 1,
        "packages": installed("benchmarl", "torchrl", "tensordict", "torch", "mpe2", "pettingzoo"),
        "env_steps_per_s": measured * ENV_STEPS_PER_ITER / wall,
        "env_steps": measured * ENV_STEPS_PER_ITER,
        "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "load_avg_1min": load,
    }


# --------------------------------------------------------------------------------------------------- the driver
def worker(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["kind"]
    if kind == "marlkit":
        return run_marlkit(spec["algo"], spec["threads"], spec["seconds"], spec["profile"])
    if kind == "time_to_return":
        return run_time_to_return(spec["seed"], spec["seconds"], spec["eval_every"], spec["episodes"], spec.get("sets"))
    if kind == "jaxmarl":
        return run_jaxmarl(spec["baselines"], spec["threads"], spec["seconds"], spec["cache"])
    if kind == "benchmarl":
        return run_benchmarl(spec["threads"], spec["iterations"])
    if kind == "off_policy":
        return run_marlkit_q(spec["algo"], spec["seconds"])
    if kind == "jaxmarl_q":
        return run_jaxmarl_q(spec["baselines"], spec["threads"], spec["seconds"], spec["cache"])
    raise ValueError(kind)


def spawn(spec: dict[str, Any], python: str, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process (no thread pools or jit caches shared between implementations);
    ``spec["src"]`` puts another checkout's marlkit first on the path."""
    name = f"{spec['kind']} {spec.get('algo', '')} threads={spec.get('threads')}".replace("  ", " ")
    env = dict(os.environ)
    if spec.get("src"):
        name += f" from {spec['src']}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [spec["src"], env.get("PYTHONPATH")]))
    print(f"... {name}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            [python, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"{name}: no result within {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"skipped": f"{name} failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1][len("RESULT ") :])


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its profile (if any) as flat ``profile_*`` fields, the shape every benchmark writes."""
    out = {k: v for k, v in record.items() if k != "profile"}
    for k, v in record.get("profile", {}).items():
        if k == "update_ops":
            out.update({f"profile_update_op_ms[{row['op']}]": row["self_ms"] for row in v})
        else:
            out[f"profile_{k}"] = v
    return out


def print_profile(record: dict[str, Any]) -> None:
    p = record["profile"]
    total = p["env_step_ms"] + p["act_ms"] + p["collector_other_ms"] + p["update_ms"]
    print(
        f"\nwhere marlkit {record['algo']} spends an iteration ({ENV_STEPS_PER_ITER} env-steps, update threads "
        f"{record['threads']}): {total:.1f} ms"
    )
    for key, label in (
        ("env_step_ms", "env.step (128 calls)"),
        ("act_ms", "policy inference, act (128 calls)"),
        ("collector_other_ms", "collector bookkeeping"),
        ("update_ms", "update"),
    ):
        print(f"  {label:36s} {p[key]:8.1f} ms  {100 * p[key] / total:5.1f} %")
    print("  update by torch op (self CPU time per update, torch.profiler):")
    for row in p["update_ops"]:
        print(f"    {row['op']:34s} {row['calls']:6d} calls {row['self_ms']:8.1f} ms  {100 * row['share']:5.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short windows, one thread setting each (JAX's compilation cache holding JaxMARL's programs: about 90 s)",
    )
    parser.add_argument("--json", default=None, help="write the records here")
    parser.add_argument("--profile", action="store_true", help="print where marlkit's time goes")
    parser.add_argument(
        "--jaxmarl-baselines",
        default=os.environ.get("JAXMARL_BASELINES"),
        help="the 'baselines' folder of a JaxMARL checkout (default: $JAXMARL_BASELINES)",
    )
    parser.add_argument(
        "--peers-python",
        default=os.environ.get("PEERS_PYTHON", sys.executable),
        help="Python with the peers installed (default: $PEERS_PYTHON or this one)",
    )
    parser.add_argument(
        "--jax-cache",
        default=os.path.join(tempfile.gettempdir(), "marlkit-bench-jax-cache"),
        help="JAX compilation cache folder; 'none' to always compile",
    )
    parser.add_argument(
        "--update-threads",
        type=int,
        nargs="*",
        default=None,
        help="torch threads for marlkit's update (default 1 2; --quick: 1)",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="timed window per measurement (default 15; --quick: 3)"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["ippo", "jaxmarl", "benchmarl", "offpolicy"],
        help="measurements to leave out",
    )
    parser.add_argument(
        "--baseline-src",
        default=None,
        metavar="DIR",
        help="also time marlkit from this src folder of another checkout, alternating, and report x_baseline",
    )
    parser.add_argument(
        "--time-to-return",
        type=int,
        default=None,
        metavar="SEEDS",
        help="seeds of MAPPO's time to the greedy returns RETURN_TARGETS on spread-v0 (default 3; --quick: 0)",
    )
    parser.add_argument(
        "--time-to-return-seconds", type=float, default=90.0, help="training time of each of those runs (default 90)"
    )
    parser.add_argument(
        "--time-to-return-set",
        nargs="*",
        default=list(TIME_TO_RETURN_SETS),
        metavar="KEY=VALUE",
        help="overrides of MAPPO's spread-v0 preset for those runs, as --set takes them (default: "
        f"{' '.join(TIME_TO_RETURN_SETS) or 'none'}; give the flag alone for the preset itself)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_src and not (Path(args.baseline_src) / "marlkit" / "__init__.py").is_file():
        parser.error(f"--baseline-src {args.baseline_src}: no marlkit package there (give a checkout's src folder)")
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    seconds = args.seconds or (3.0 if args.quick else 15.0)
    threads = args.update_threads or ([1] if args.quick else [1, 2])
    cache = None if args.jax_cache.lower() == "none" else args.jax_cache
    specs = [
        {"kind": "marlkit", "algo": "mappo", "threads": t, "seconds": seconds, "profile": args.profile} for t in threads
    ]
    if "ippo" not in args.skip and not args.quick:
        specs += [
            {"kind": "marlkit", "algo": "ippo", "threads": t, "seconds": seconds, "profile": False} for t in threads
        ]
    if "jaxmarl" not in args.skip:
        specs += [
            {"kind": "jaxmarl", "baselines": args.jaxmarl_baselines, "threads": t, "seconds": seconds, "cache": cache}
            for t in ([1] if args.quick else [1, 2])
        ]
    if "benchmarl" not in args.skip:
        specs.append({"kind": "benchmarl", "threads": 1, "iterations": 1 if args.quick else 4})
    if "offpolicy" not in args.skip:  # at Q_HP (_offpolicy.py): one gradient step per 32 env-steps for all
        specs += [
            {"kind": "off_policy", "algo": a, "seconds": seconds} for a in (["vdn"] if args.quick else OFF_POLICY)
        ]
        if "jaxmarl" not in args.skip:
            specs += [
                {
                    "kind": "jaxmarl_q",
                    "baselines": args.jaxmarl_baselines,
                    "threads": t,
                    "seconds": seconds,
                    "cache": cache,
                }
                for t in ([1] if args.quick else [1, 2])
            ]
    ttr_seeds = args.time_to_return if args.time_to_return is not None else (0 if args.quick else 3)
    specs += [
        {
            "kind": "time_to_return",
            "seed": k,
            "seconds": args.time_to_return_seconds,
            "eval_every": 25_000,
            "episodes": 100,
            "sets": args.time_to_return_set,
        }
        for k in range(ttr_seeds)
    ]
    if args.baseline_src:  # each marlkit measurement right after the same one from the baseline checkout
        src = str(Path(args.baseline_src).resolve())
        specs = [s for spec in specs for s in (([{**spec, "src": src}] if spec["kind"] == "marlkit" else []) + [spec])]

    load_start = os.getloadavg()
    records, returns, q_records, skipped = [], [], [], []
    for spec in specs:
        ours = spec["kind"] in ("marlkit", "time_to_return", "off_policy")
        result = spawn(spec, sys.executable if ours else args.peers_python, timeout=900)
        if "skipped" in result:
            skipped.append(result["skipped"])
            print(f"skipped: {result['skipped']}", file=sys.stderr)
            continue
        if spec.get("src"):
            result = {**result, "impl": "marlkit@baseline", "src": spec["src"]}
        if spec["kind"] == "time_to_return":  # its own settings (the preset), not HP
            returns.append(result)
            continue
        if spec["kind"] in ("off_policy", "jaxmarl_q"):
            q_records.append({**result, "deviations": Q_DEVIATIONS[result["impl"]], **Q_HP})
            continue
        records.append({**result, "deviations": DEVIATIONS[result["impl"].split("@")[0]], **HP})
    load_end = os.getloadavg()
    import numpy  # noqa: F401  (loaded, so that machine() in the results names the BLAS NumPy's acting runs on)

    reference = next((r["env_steps_per_s"] for r in records if r["impl"] == "marlkit" and r["algo"] == "mappo"), None)
    jaxmarl = next((r["env_steps_per_s"] for r in records if r["impl"] == "jaxmarl"), None)  # its first setting
    for r in records:
        r["x_marlkit_mappo"] = r["env_steps_per_s"] / reference if reference else None
        r["x_jaxmarl"] = r["env_steps_per_s"] / jaxmarl if jaxmarl else None
        # Work per CPU-second: what the rate would be on cores of its own (on a shared machine wall rates also
        # measure how many cycles each process was given).
        r["env_steps_per_cpu_s"] = r["env_steps_per_s"] / r["cpu_per_wall"]
    baseline = {(r["algo"], r["threads"]): r["env_steps_per_s"] for r in records if r["impl"] == "marlkit@baseline"}
    for r in records:
        if r["impl"] == "marlkit" and (r["algo"], r["threads"]) in baseline:
            r["x_baseline"] = r["env_steps_per_s"] / baseline[(r["algo"], r["threads"])]

    jaxmarl_q = next((r["env_steps_per_s"] for r in q_records if r["impl"] == "jaxmarl"), None)
    for r in q_records:
        r["x_jaxmarl"] = r["env_steps_per_s"] / jaxmarl_q if jaxmarl_q else None
        r["env_steps_per_cpu_s"] = r["env_steps_per_s"] / r["cpu_per_wall"]
    write_json("train_throughput", [flat(r) for r in records] + q_records + returns, args.json, packages=("torch",))
    print("hyper-parameters, the same for every implementation:\n  " + ", ".join(f"{k}={v}" for k, v in HP.items()))
    print("where an implementation cannot follow them exactly:")
    for impl, text in DEVIATIONS.items():
        print(f"  {impl}: {text}")
    print(
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, BLAS: "
        + ", ".join(f"{b['internal_api']} {b['architecture']}" for b in machine()["blas"] if isinstance(b, dict))
    )
    print_table(
        f"end-to-end training env-steps/s (rollout + update), {os.cpu_count()} shared cores; load average "
        f"(1, 5, 15 min) {' '.join(f'{x:.2f}' for x in load_start)} at start, "
        f"{' '.join(f'{x:.2f}' for x in load_end)} at end",
        records,
        [
            "impl",
            "algo",
            "threads",
            "env_steps_per_s",
            "x_jaxmarl",
            "x_marlkit_mappo",
            "x_baseline",
            "env_steps_per_cpu_s",
            "compile_s",
            "env_steps",
            "wall_s",
            "cpu_per_wall",
            "load_avg_1min",
        ],
    )
    if q_records:
        print_table(
            "off-policy training env-steps/s at the same gradient steps per env-step (1 per "
            f"{Q_ENV_STEPS_PER_UPDATE // Q_HP['gradient_steps']}; benchmarks/_offpolicy.py Q_HP)",
            q_records,
            [
                "impl",
                "algo",
                "threads",
                "env_steps_per_s",
                "x_jaxmarl",
                "gradient_steps_per_s",
                "env_steps_per_cpu_s",
                "compile_s",
                "wall_s",
                "cpu_per_wall",
                "load_avg_1min",
            ],
        )
    if returns:
        targets = [f"{c}time_to_return[{t:g}]_s" for t in RETURN_TARGETS for c in ("", "cpu_")]
        print_table(
            "MAPPO on spread-v0 (its preset, one torch thread): training seconds to a greedy per-agent return, "
            "evaluations left out of the clock",
            returns,
            ["seed", *targets, "train_s", "env_steps", "final_return", "cpu_per_wall", "load_avg_1min"],
        )
    for reason in skipped:
        print(f"skipped: {reason}")
    for r in records:
        if "profile" in r:
            print_profile(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
