"""Off-policy training throughput for ``train_throughput.py``: marlkit's VDN (and IQL, QMIX) against JaxMARL's
VDN-FF baseline (``baselines/QLearning/vdn_ff.py`` of the FLAIROx/JaxMARL repository), at the same gradient steps
per env-step.

Both train on MPE simple_spread with ``Q_HP``: marlkit's reproduction-table sizes for VDN on spread-v0 (16 copies,
4 steps per update, 2 gradient steps of 128 transitions, a 64x64 ReLU Q-network shared by the agents with a one-hot
agent id, 200k replay) — one gradient step per 32 env-steps for both. The algorithm is set to what JaxMARL's VDN-FF
computes where marlkit has a choice (no double Q, squared TD error); its other differences are in
``Q_DEVIATIONS``. JaxMARL runs jitted on the CPU as in ``run_jaxmarl`` (compile timed apart, one warm-up run of
the compiled program, then a timed run); its greedy test episodes during training are switched off.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

Q_HP: dict[str, Any] = {
    "task": "MPE simple_spread, 3 agents, 3 landmarks, 25-step episodes, local_ratio 0.5, discrete actions",
    "num_envs": 16,
    "rollout_steps": 4,
    "gradient_steps": 2,
    "batch_size": 128,
    "hidden": "64x64",
    "activation": "relu",
    "lr": 5e-4,
    "gamma": 0.95,
    "buffer_size": 200_000,
    "target_update_every": 200,
    "max_grad_norm": 10.0,
    "warmup_steps": 1_000,
    "double_q": False,
    "td_loss": "squared error",
    "agent_id": True,
}
Q_ENV_STEPS_PER_UPDATE = Q_HP["num_envs"] * Q_HP["rollout_steps"]

Q_DEVIATIONS = {
    "marlkit": "target network copied every 200 gradient steps",
    "jaxmarl": "RAdam, not Adam; target network copied every 200 updates (= 400 gradient steps); MPE episodes of "
    "26 steps; epsilon decays over 10% of the run",
}


def run_marlkit_q(algo: str, seconds: float) -> dict[str, Any]:
    """marlkit ``algo`` (iql, vdn, qmix) on spread-v0 configured to ``Q_HP``: collect, update, repeat."""
    import torch
    from threadpoolctl import threadpool_limits
    from train_throughput import installed

    import marlkit
    from marlkit.algorithms.dqn import DQN, DQNConfig
    from marlkit.algorithms.qmix import QMIX, QMIXConfig
    from marlkit.algorithms.vdn import VDN
    from marlkit.collect import Collector
    from marlkit.core import Progress

    threadpool_limits(1, user_api="blas")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    learner_class, config_class = {"iql": (DQN, DQNConfig), "vdn": (VDN, DQNConfig), "qmix": (QMIX, QMIXConfig)}[algo]
    kwargs: dict[str, Any] = {
        "rollout_steps": Q_HP["rollout_steps"],
        "gradient_steps": Q_HP["gradient_steps"],
        "batch_size": Q_HP["batch_size"],
        "hidden": tuple(int(h) for h in Q_HP["hidden"].split("x")),
        "activation": Q_HP["activation"],
        "lr": Q_HP["lr"],
        "gamma": Q_HP["gamma"],
        "buffer_size": Q_HP["buffer_size"],
        "target_update_every": Q_HP["target_update_every"],
        "max_grad_norm": Q_HP["max_grad_norm"],
        "warmup_steps": Q_HP["warmup_steps"],
        "double_q": Q_HP["double_q"],
        "huber_delta": 0.0,
        "agent_id": Q_HP["agent_id"],
    }
    cfg = config_class(**kwargs)
    env = marlkit.make("spread-v0", num_envs=Q_HP["num_envs"], seed=0)
    learner = learner_class(env, cfg, seed=0)
    collector = Collector(env, learner, cfg.rollout_steps, seed=0)

    def iteration(steps: int) -> int:  # what the runner does for one batch
        rollout, _ = collector.collect()
        steps += Q_ENV_STEPS_PER_UPDATE
        learner.set_progress(Progress(env_steps=steps, total_steps=10**7, batch_steps=Q_ENV_STEPS_PER_UPDATE))
        learner.update(rollout)
        return steps

    steps = 0
    while steps <= Q_HP["warmup_steps"] + 4 * Q_ENV_STEPS_PER_UPDATE:  # past the warm-up: every update learns
        steps = iteration(steps)
    load, start, cpu_start, first = os.getloadavg()[0], time.perf_counter(), time.process_time(), steps
    while time.perf_counter() - start < seconds:
        steps = iteration(steps)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "impl": "marlkit",
        "algo": algo,
        "kind": "off_policy",
        "threads": "1",
        "packages": installed("marlkit", "torch", "numpy"),
        "env_steps_per_s": (steps - first) / wall,
        "gradient_steps_per_s": (steps - first) / Q_ENV_STEPS_PER_UPDATE * Q_HP["gradient_steps"] / wall,
        "env_steps": steps - first,
        "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "load_avg_1min": load,
    }


def find_jaxmarl_q(directory: str | None) -> Path | None:
    """``QLearning/vdn_ff.py`` under ``directory`` (the repository's ``baselines`` folder or the repository)."""
    if not directory:
        return None
    for candidate in (Path(directory) / "QLearning", Path(directory) / "baselines" / "QLearning"):
        if (candidate / "vdn_ff.py").is_file():
            return candidate / "vdn_ff.py"
    return None


def run_jaxmarl_q(baselines: str | None, threads: int, seconds: float, cache: str | None) -> dict[str, Any]:
    """JaxMARL's VDN-FF configured to ``Q_HP``, jitted; the rate of a second run of the compiled program."""
    script = find_jaxmarl_q(baselines)
    if script is None:
        return {"skipped": "JaxMARL's baselines folder not given or without QLearning/vdn_ff.py"}
    if threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import importlib.util
    import types

    try:
        import jax
        import yaml
    except ImportError as err:
        return {"skipped": f"jax not importable: {err}"}
    if importlib.util.find_spec("wandb") is None:
        sys.modules["wandb"] = types.SimpleNamespace(log=lambda *a, **k: None, init=lambda *a, **k: None)
    spec = importlib.util.spec_from_file_location("jaxmarl_vdn_ff", script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        return {"skipped": f"JaxMARL VDN-FF not importable (it needs flashbax, hydra-core): {err}"}
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    config = yaml.safe_load((script.parent / "config" / "config.yaml").read_text())
    config.update(yaml.safe_load((script.parent / "config" / "alg" / "vdn_ff_mpe.yaml").read_text()))
    hidden = [int(h) for h in Q_HP["hidden"].split("x")]
    assert len(set(hidden)) == 1 and Q_HP["activation"] == "relu"  # its QNetwork: equal ReLU layers
    updates = max(50, round(seconds * 20_000 / Q_ENV_STEPS_PER_UPDATE))  # one program of about ``seconds``
    config.update(
        {
            "ENV_NAME": "MPE_simple_spread_v3",
            "ENV_KWARGS": {},
            "NUM_ENVS": Q_HP["num_envs"],
            "NUM_STEPS": Q_HP["rollout_steps"],
            "NUM_EPOCHS": Q_HP["gradient_steps"],
            "BUFFER_BATCH_SIZE": Q_HP["batch_size"],
            "BUFFER_SIZE": Q_HP["buffer_size"],
            "HIDDEN_SIZE": hidden[0],
            "NUM_LAYERS": len(hidden) + 2,  # its QNetwork has NUM_LAYERS - 2 hidden layers
            "LR": Q_HP["lr"],
            "LR_LINEAR_DECAY": False,
            "GAMMA": Q_HP["gamma"],
            "MAX_GRAD_NORM": Q_HP["max_grad_norm"],
            "TARGET_UPDATE_INTERVAL": Q_HP["target_update_every"],
            "LEARNING_STARTS": Q_HP["warmup_steps"],
            "TEST_DURING_TRAINING": False,
            "WANDB_MODE": "disabled",
            "TOTAL_TIMESTEPS": updates * Q_ENV_STEPS_PER_UPDATE,
        }
    )
    env, _ = module.env_from_config(config)
    rng = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = jax.jit(module.make_train(config, env)).lower(rng).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(rng))  # warm-up
    load, start, cpu_start = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = jax.block_until_ready(compiled(jax.random.PRNGKey(1)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    grad_steps = int(out["runner_state"][0].grad_steps)
    from train_throughput import installed

    return {
        "impl": "jaxmarl",
        "algo": "vdn",
        "kind": "off_policy",
        "threads": "1 (XLA flags)" if threads == 1 else "all (XLA default)",
        "packages": installed("jaxmarl", "jax", "jaxlib", "flax", "optax", "flashbax"),
        "env_steps_per_s": updates * Q_ENV_STEPS_PER_UPDATE / wall,
        "gradient_steps_per_s": grad_steps / wall,
        "env_steps": updates * Q_ENV_STEPS_PER_UPDATE,
        "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "load_avg_1min": load,
        "compile_s": compile_s,
    }
