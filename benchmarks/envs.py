"""Env-steps per second of marlkit's batched environments against peers, measured in the same run on one core.

One env-step is one copy advanced one step. Peers, each in its natural use:

* mpe2 ``simple_spread_v3.parallel_env()`` — one copy (PettingZoo's reference MPE), resets included;
* VMAS ``simple_spread`` — torch on the CPU, batched (no resets: VMAS leaves them to the caller);
* JaxMARL ``MPE_simple_spread_v3`` — ``jax.jit(jax.vmap(env.step))``, autoreset included; compile time reported
  separately.

Actions are drawn in advance and cycled, so no implementation is timed drawing them. The whole process is pinned
to one core (BLAS and XLA threads too). Usage::

    python benchmarks/envs.py [--quick] [--json benchmarks/results/envs.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core, print_table, rate, write_json

POOL = 8  # distinct action batches cycled through


def bench_marlkit(env_id: str, num_envs: int, seconds: float, validate: bool) -> float:
    import marlkit
    from marlkit.envs import sample_actions

    env = marlkit.make(env_id, num_envs=num_envs, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    info = env.step(sample_actions(env, env.reset()[1].get("action_mask"), rng))[4]  # the first step is validated
    if "action_mask" in info:  # masks change every step: sample under the current mask (timed, but cheap)
        state = {"info": info}

        def step() -> None:
            state["info"] = env.step(sample_actions(env, state["info"].get("action_mask"), rng))[4]
    else:
        pool = [sample_actions(env, None, rng) for _ in range(POOL)]
        it = iter(range(1 << 62))

        def step() -> None:
            env.step(pool[next(it) % POOL])

    env.validate_actions = validate
    return rate(step, num_envs, seconds)


def bench_mpe2(seconds: float) -> float | None:
    try:
        from mpe2 import simple_spread_v3
    except ImportError:
        return None
    env = simple_spread_v3.parallel_env()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    pool = [{a: int(x) for a, x in zip(env.possible_agents, rng.integers(5, size=3))} for _ in range(POOL)]
    it = iter(range(1 << 62))

    def step() -> None:
        _, _, term, trunc, _ = env.step(pool[next(it) % POOL])
        if any(term.values()) or any(trunc.values()):
            env.reset()

    return rate(step, 1, seconds)


def bench_vmas(num_envs: int, seconds: float) -> float | None:
    try:
        import torch
        import vmas
    except ImportError:
        return None
    torch.set_num_threads(1)
    env = vmas.make_env("simple_spread", num_envs=num_envs, device="cpu", continuous_actions=False, seed=0)
    env.reset()
    g = torch.Generator().manual_seed(0)
    pool = [[torch.randint(0, 5, (num_envs,), generator=g) for _ in env.agents] for _ in range(POOL)]
    it = iter(range(1 << 62))
    return rate(lambda: env.step(pool[next(it) % POOL]), num_envs, seconds)


def bench_jaxmarl(num_envs: int, seconds: float) -> tuple[float, float] | None:
    try:
        import jax
        import jax.numpy as jnp
        from jaxmarl import make
    except ImportError:
        return None
    env = make("MPE_simple_spread_v3")
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    _, state = jax.jit(jax.vmap(env.reset))(keys)
    step = jax.jit(jax.vmap(env.step))
    rng = np.random.default_rng(0)
    pool = [{a: jnp.asarray(rng.integers(5, size=num_envs), dtype=jnp.int32) for a in env.agents} for _ in range(POOL)]
    start = time.perf_counter()
    jax.block_until_ready(step(keys, state, pool[0]))
    compile_s = time.perf_counter() - start
    holder = {"state": state, "i": 0}

    def one() -> None:
        holder["i"] += 1
        _, holder["state"], *_ = step(keys, holder["state"], pool[holder["i"] % POOL])

    def block() -> None:  # block once per call so asynchronous dispatch does not flatter the number
        one()
        jax.block_until_ready(holder["state"])

    return rate(block, num_envs, seconds), compile_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, shorter windows (< 60 s)")
    parser.add_argument("--json", default=None, help="write the records here")
    parser.add_argument("--num-envs", type=int, nargs="*", default=None, help="copies (default 1 32 1024 4096)")
    args = parser.parse_args(argv)
    cpu = pin_one_core()
    sizes = args.num_envs or ([1, 32, 1024] if args.quick else [1, 32, 1024, 4096])
    seconds = 0.3 if args.quick else 1.5

    import marlkit

    records: list[dict] = []
    mpe2_rate = bench_mpe2(seconds)
    if mpe2_rate is not None:
        records.append({"env": "spread", "impl": "mpe2", "num_envs": 1, "env_steps_per_s": mpe2_rate})
    for n in sizes:
        records.append(
            {
                "env": "spread",
                "impl": "marlkit",
                "num_envs": n,
                "validate": True,
                "env_steps_per_s": bench_marlkit("spread-v0", n, seconds, validate=True),
            }
        )
        records.append(
            {
                "env": "spread",
                "impl": "marlkit",
                "num_envs": n,
                "validate": False,
                "env_steps_per_s": bench_marlkit("spread-v0", n, seconds, validate=False),
            }
        )
        v = bench_vmas(n, seconds)
        if v is not None:
            records.append({"env": "spread", "impl": "vmas", "num_envs": n, "env_steps_per_s": v})
        j = bench_jaxmarl(n, seconds)
        if j is not None:
            records.append(
                {"env": "spread", "impl": "jaxmarl", "num_envs": n, "env_steps_per_s": j[0], "compile_s": j[1]}
            )
    for env_id in ("pursuit-v0", "foraging-v0"):
        if env_id not in marlkit.list_envs():
            continue
        for n in sizes:
            records.append(
                {
                    "env": env_id.rsplit("-v", 1)[0],
                    "impl": "marlkit",
                    "num_envs": n,
                    "validate": True,
                    "env_steps_per_s": bench_marlkit(env_id, n, seconds, validate=True),
                }
            )
    for r in records:
        if mpe2_rate:
            r["x_mpe2"] = r["env_steps_per_s"] / mpe2_rate
    doc = write_json("envs", records, args.json, packages=("mpe2", "pettingzoo", "vmas", "jaxmarl", "jax", "torch"))
    blas = doc["machine"]["blas"]
    print_table(
        f"env-steps/s on one core (cpu {cpu}); OPENBLAS_CORETYPE={doc['machine']['OPENBLAS_CORETYPE']}; "
        f"BLAS: {blas if isinstance(blas, str) else [b['internal_api'] + ':' + str(b['architecture']) for b in blas]}",
        records,
        ["env", "impl", "num_envs", "validate", "env_steps_per_s", "x_mpe2", "compile_s"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
