"""The ``marlkit`` command line.

``marlkit envs`` lists the registered environments with their groups and spaces; ``marlkit demo`` steps every
registered environment with random actions (batched), prints a table of throughput and random-policy returns, and
writes one GIF per environment.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _space_str(space) -> str:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    return str(space)


def _console():
    """A rich console; tables keep their full width when the output is piped or logged."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def cmd_envs(args: argparse.Namespace) -> int:
    from rich.table import Table

    import marlkit
    from marlkit.envs.registry import spec

    table = Table(title="marlkit environments")
    for col in ("id", "groups (agents)", "observation", "action", "state", "description"):
        table.add_column(col)
    for env_id in marlkit.list_envs():
        env = marlkit.make(env_id)
        groups = ", ".join(f"{g} ({len(ids)})" for g, ids in env.groups.items())
        obs = ", ".join(_space_str(env.group_observation_space(g)) for g in env.groups)
        act = ", ".join(_space_str(env.group_action_space(g)) for g in env.groups)
        table.add_row(env_id, groups, obs, act, _space_str(env.state_space), spec(env_id).description)
        env.close()
    _console().print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Step every registered env with random actions, report speed and random returns, write GIFs."""
    from rich.table import Table

    import marlkit
    from marlkit.envs import sample_actions
    from marlkit.envs.rendering import record_episode, save_gif

    console = _console()
    out = Path(args.out)
    ids = args.envs or marlkit.list_envs()
    table = Table(title=f"random policy, {args.num_envs} copies per env, {args.steps} steps each (seed {args.seed})")
    for col in ("env", "env-steps/s", "episodes", "mean return per agent", "gif"):
        table.add_column(col, justify="right" if col not in ("env", "gif") else "left")
    for env_id in ids:
        env = marlkit.make(env_id, num_envs=args.num_envs, seed=args.seed)
        rng = np.random.default_rng(args.seed)
        obs, info = env.reset()
        returns: list[float] = []
        start = time.perf_counter()
        for _ in range(args.steps):
            obs, _, _, _, info = env.step(sample_actions(env, info.get("action_mask"), rng))
            done = info["episode_done"]
            if done.any():
                per_agent = np.concatenate([r[done] for r in info["episode_return"].values()], axis=1)
                returns.extend(per_agent.mean(axis=1).tolist())
        rate = args.steps * args.num_envs / (time.perf_counter() - start)
        gif_env = marlkit.make(env_id, num_envs=1, seed=args.seed)
        gif = save_gif(record_episode(gif_env, seed=args.seed), out / f"{env_id}.gif",
                       fps=gif_env.metadata.get("render_fps", 10))
        mean = f"{np.mean(returns):.2f} ± {np.std(returns):.2f}" if returns else "–"
        table.add_row(env_id, f"{rate:,.0f}", str(len(returns)), mean, gif.name)
    console.print(table)
    console.print(f"GIFs written to [bold]{out}[/bold]")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marlkit", description="Multi-agent reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("envs", help="list registered environments with their groups and spaces")
    p.set_defaults(func=cmd_envs)
    p = sub.add_parser("demo", help="step every environment with random actions; print a table; write GIFs")
    p.add_argument("--envs", nargs="*", help="env ids (default: all registered)")
    p.add_argument("--num-envs", type=int, default=256, help="copies stepped at once per env (default 256)")
    p.add_argument("--steps", type=int, default=200, help="batched steps per env (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default="runs/demo", help="folder for the GIFs (default runs/demo)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
