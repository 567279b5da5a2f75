"""Env-steps per second of marlkit's batched MaMuJoCo envs against Gymnasium-Robotics' own, measured in the same run.

One env-step is one copy of the body advanced one env step (``frame_skip`` physics steps), its per-agent observations,
state and reward computed. Measured, for HalfCheetah 2x3 and Ant 2x4 at 1, 16 and 64 copies:

* ``marlkit``: ``marlkit.make(id, num_envs=N, threads=T)`` stepped with random actions (validation on, autoreset
  included), T = 1 and 2 worker threads;
* ``mamujoco_v1``: N ``gymnasium_robotics.mamujoco_v1.parallel_env`` copies stepped one after another in a Python
  loop, each reset when its episode ends (its natural use; one thread);
* ``rollout``: the physics alone through ``mujoco.rollout`` (the alternative to MjBatch's per-copy ``mj_step``: many
  states stepped in C over a thread pool, but from state vectors, without the warm start and contact forces the
  observations need), T = 1 and 2 threads, for scale.

Actions are drawn in advance and cycled. With 2 threads the numbers depend on a second free core; the 1-minute load
average during each measurement is recorded. Usage::

    python benchmarks/mujoco_envs.py [--quick] [--json benchmarks/results/mujoco_envs.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, rate, write_json

POOL = 8
TASKS = {"mamujoco-halfcheetah-2x3-v0": ("HalfCheetah", "2x3"), "mamujoco-ant-2x4-v0": ("Ant", "2x4")}


def bench_marlkit(env_id: str, n: int, threads: int, seconds: float) -> float:
    import marlkit
    from marlkit.envs import sample_actions

    env = marlkit.make(env_id, num_envs=n, seed=0, threads=threads)
    env.reset()
    rng = np.random.default_rng(0)
    pool = [sample_actions(env, None, rng) for _ in range(POOL)]
    it = iter(range(1 << 62))
    try:
        return rate(lambda: env.step(pool[next(it) % POOL]), n, seconds)
    finally:
        env.close()


def bench_mamujoco(scenario: str, conf: str, n: int, seconds: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from gymnasium_robotics import mamujoco_v1

    envs = [mamujoco_v1.parallel_env(scenario, conf) for _ in range(n)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    rng = np.random.default_rng(0)
    agents = envs[0].possible_agents
    pool = [
        {a: rng.uniform(-1, 1, envs[0].action_space(a).shape).astype(np.float32) for a in agents} for _ in range(POOL)
    ]
    it = iter(range(1 << 62))

    def step() -> None:
        actions = pool[next(it) % POOL]
        for e in envs:
            _, _, term, trunc, _ = e.step(actions)
            if term[agents[0]] or trunc[agents[0]]:
                e.reset()

    return rate(step, n, seconds)


def bench_rollout(scenario: str, n: int, threads: int, seconds: float) -> float:
    import mujoco
    from mujoco import rollout

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gymnasium

        gym = gymnasium.make(f"{scenario}-v5").unwrapped
    model, skip = gym.model, gym.frame_skip
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    state = np.zeros((n, mujoco.mj_stateSize(model, spec)))
    mujoco.mj_getState(model, data, state[0], spec)
    state[:] = state[0]
    out = np.zeros((n, skip, state.shape[1]))
    ctrl = np.random.default_rng(0).uniform(-1, 1, (n, skip, model.nu))
    with rollout.Rollout(nthread=threads) as r:
        datas = [mujoco.MjData(model) for _ in range(threads)]

        def step() -> None:
            r.rollout(model, datas, state, ctrl, state=out)
            state[:] = out[:, -1]

        return rate(step, n, seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short windows, for a smoke run")
    p.add_argument("--json", help="write the records here")
    args = p.parse_args(argv)
    seconds = 0.3 if args.quick else 2.0
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    records = []
    for env_id, (scenario, conf) in TASKS.items():
        for n in (1, 16, 64):
            row: dict[str, object] = {"env": env_id, "copies": n}
            for threads in (1, 2):
                row[f"marlkit_{threads}t"] = round(bench_marlkit(env_id, n, threads, seconds))
                row[f"rollout_{threads}t"] = round(bench_rollout(scenario, n, threads, seconds))
            row["mamujoco_v1"] = round(bench_mamujoco(scenario, conf, n, seconds))
            row["speedup_1t"] = round(row["marlkit_1t"] / row["mamujoco_v1"], 2)  # type: ignore[operator]
            row["speedup_2t"] = round(row["marlkit_2t"] / row["mamujoco_v1"], 2)  # type: ignore[operator]
            row["load_avg_1min"] = round(os.getloadavg()[0], 2)
            records.append(row)
            print(row, flush=True)
    print_table(
        "MaMuJoCo env-steps/s: marlkit batched vs mamujoco_v1 in a loop (and the raw rollout)",
        records,
        list(records[0]),
    )
    write_json("mujoco_envs", records, args.json, packages=("mujoco", "gymnasium-robotics", "gymnasium"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
