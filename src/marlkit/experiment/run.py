"""What a run is: its config (``RunConfig``), its directory, and what it returns (``RunResult``).

A run config has three fixed sections and one that depends on the algorithm::

    algorithm: mappo            # read first: it decides which dataclass ``algo`` is
    env: {id: spread-v0, num_envs: 8, kwargs: {}, eval_num_envs: null}
    experiment: {steps: 1000000, seed: 0, ...}
    algo: {lr: 0.0007, ...}     # the algorithm's own config; unset fields take its defaults and preset
    preset: spread-v0           # the tuned preset make_run_config applied beneath it (marlkit.experiment.presets)

A run directory holds everything needed to evaluate, render, plot or resume the run; ``new_run_dir`` makes one,
and ``marlkit.core.rundir`` names its parts (``config.yaml``, ``metrics.csv``, ``checkpoints/``, ``eval.json``,
``media/``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marlkit.algorithms.registry import algo_config
from marlkit.core.config import ConfigError, check, from_dict, override, set_path, to_dict, yaml_load
from marlkit.core.errors import did_you_mean
from marlkit.core.rundir import CHECKPOINT_DIR, CONFIG_FILE, MEDIA_DIR
from marlkit.experiment.presets import AUTO, Origin, Preset, select


@dataclass(frozen=True)
class EnvConfig:
    """Which environment to train on and how many copies to step at once."""

    id: str
    """Registered environment id, e.g. spread-v0 (see `marlkit envs`), or pz:MODULE for a PettingZoo env through
    from_pettingzoo, e.g. pz:simple_spread_v3 (kwargs go to its parallel_env). Modules other than PettingZoo's and
    mpe2's env modules and those packages register (entry-point group marlkit.pettingzoo) need --trust-module."""
    num_envs: int = 128
    """Copies stepped at once while collecting (128 as the MAPPO paper's rollout threads for MPE)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Options passed to the environment constructor, e.g. {k: -50} for penalty-v0."""
    eval_num_envs: int | None = None
    """Copies stepped at once while evaluating; default: as many as experiment.eval_episodes, at most 100."""

    def __post_init__(self) -> None:
        from marlkit.envs.registry import UnknownEnvError, check_id

        try:
            check_id(self.id)
        except UnknownEnvError as e:
            raise ConfigError(f"env.id: {e}") from None
        check(self.num_envs >= 1, "env.num_envs", "an integer >= 1", self.num_envs)
        check(
            self.eval_num_envs is None or self.eval_num_envs >= 1,
            "env.eval_num_envs",
            "an integer >= 1, or null for the default",
            self.eval_num_envs,
        )


@dataclass(frozen=True)
class ExperimentConfig:
    """How long to train, how often to log, evaluate and checkpoint, and where the run directory goes."""

    steps: int = 1_000_000
    """Total env-steps to train for, summed over copies (a collection adds num_envs * rollout_steps)."""
    seed: int = 0
    """Seeds everything: network initialisation, sampling, environments, evaluation."""
    eval_every: int = 100_000
    """Evaluate the greedy policy every this many env-steps; 0 evaluates only at the end."""
    eval_episodes: int = 100
    """Episodes per evaluation."""
    checkpoint_every: int = 100_000
    """Write a checkpoint every this many env-steps; 0 writes only the final one."""
    log_every: int = 10_000
    """Write a row of training metrics every this many env-steps."""
    out: str = "runs"
    """Folder that holds run directories."""
    name: str | None = None
    """Run directory name; default <algorithm>_<env>_s<seed>_<timestamp>."""
    torch_threads: int = 1
    """torch.set_num_threads for the run (more threads than free cores slows training down sharply)."""
    progress: bool = True
    """Show a live progress bar on a terminal; otherwise (or when false) print one line per log event."""
    gif: bool = True
    """Record one greedy episode as media/final.gif at the end (for environments that render)."""
    workers: int = 0
    """Ray rollout workers sharing env.num_envs between them (docs/distributed.md); 0 collects in this process."""
    worker_cpus: float = 0.5
    """CPUs each Ray rollout worker reserves (fractional: two workers and the learner fit on two cores)."""
    pin_cores: bool = True
    """On a Ray cluster that is this machine alone, run the workers (and Ray) on their own cores and the learner on
    the others (docs/distributed.md)."""
    ray_address: str | None = None
    """The Ray cluster of the workers: auto for the one `ray start` made, HOST:PORT, or null for a local Ray."""
    ray_mode: str | None = None
    """How the Ray workers feed the learner (docs/distributed.md): sync, pipelined or async (batches to the learner
    here), ps-sync or ps-async (gradients to a parameter server); null: pipelined for on-policy learners, async for
    off-policy ones."""
    max_staleness: int = 2
    """ps-async: a gradient computed on weights more than this many server steps old is dropped."""
    learners: int = 1
    """Learners averaging their gradients over torch.distributed (gloo): the driver's and learners - 1 Ray replicas,
    each on an equal share of every batch (docs/distributed.md); 1: the learner alone."""

    def __post_init__(self) -> None:
        check(self.steps >= 1, "experiment.steps", "an integer >= 1", self.steps)
        check(self.seed >= 0, "experiment.seed", "an integer >= 0", self.seed)
        for name in ("eval_every", "checkpoint_every"):
            check(
                getattr(self, name) >= 0,
                f"experiment.{name}",
                "an integer >= 0 (0 = only at the end)",
                getattr(self, name),
            )
        check(self.eval_episodes >= 1, "experiment.eval_episodes", "an integer >= 1", self.eval_episodes)
        check(self.log_every >= 1, "experiment.log_every", "an integer >= 1", self.log_every)
        check(self.torch_threads >= 1, "experiment.torch_threads", "an integer >= 1", self.torch_threads)
        check(self.workers >= 0, "experiment.workers", "an integer >= 0 (0: no Ray workers)", self.workers)
        check(self.worker_cpus > 0, "experiment.worker_cpus", "a positive number of CPUs", self.worker_cpus)
        modes = (None, "sync", "pipelined", "async", "ps-sync", "ps-async")
        allowed = "sync, pipelined, async, ps-sync, ps-async or null"
        check(self.ray_mode in modes, "experiment.ray_mode", allowed, self.ray_mode)
        check(self.max_staleness >= 0, "experiment.max_staleness", "an integer >= 0", self.max_staleness)
        check(self.learners >= 1, "experiment.learners", "an integer >= 1 (1: one learner)", self.learners)
        ps = (self.ray_mode or "").startswith("ps-")
        check(not (ps and self.learners > 1), "experiment.learners", "1 with a parameter server (ray_mode ps-*)",
              self.learners)  # fmt: skip
        plain = self.name is None or (self.name not in ("", ".", "..") and not set(self.name) & set("/\\"))
        check(plain, "experiment.name", "a plain folder name (no path separators)", self.name)


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; ``config.yaml`` of a run directory is exactly this."""

    algorithm: str
    """Registered algorithm name (see `marlkit algos`); it decides which config class `algo` is."""
    env: EnvConfig
    """The environment."""
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    """Budget, seeding, logging, evaluation, checkpoints and the output folder."""
    algo: Any = None
    """The algorithm's config dataclass; a mapping is read over its defaults (preset applied)."""
    preset: str | None = None
    """The tuned preset make_run_config applied beneath the other values (a shipped task such as spread-v0, or a
    file), null for none; make_run_config applies it again to a config that names it, loading a config never does."""

    def __post_init__(self) -> None:
        from marlkit.algorithms.registry import algo_spec, kind_reason

        object.__setattr__(self, "algo", algo_config(self.algorithm, self.algo))
        if reason := kind_reason(algo_spec(self.algorithm), self.env.id):
            raise ConfigError(f"cannot train {self.algorithm} on {self.env.id}: {reason}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from plain data (a parsed YAML file); ``algorithm`` is read first to type ``algo``."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"a run config is a mapping with keys algorithm, env, experiment, algo, preset; got {data!r}"
            )
        if "algorithm" not in data:
            raise ConfigError("a run config needs 'algorithm' (e.g. algorithm: mappo); see `marlkit algos`")
        return from_dict(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a YAML file (a run directory's ``config.yaml`` or a hand-written one)."""
        return cls.from_dict(_read_yaml(path))

    def to_dict(self) -> dict[str, Any]:
        return _plain(to_dict(self))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def make_run_config(
    algorithm: str | None = None,
    env: str | None = None,
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    sets: Iterable[str] = (),
    preset: str | Path | None = "auto",
    **fields: Any,
) -> RunConfig:
    """Build a run config the way ``marlkit train`` does.

    Start from the defaults of ``algorithm`` on ``env`` with its tuned ``preset`` over them, then read ``config`` (a
    ``RunConfig``, a mapping or a YAML path) over both; ``env`` replaces the config's env id; then set
    ``fields`` — a bare field name of exactly one section (``steps=2000`` is ``experiment.steps``, ``lr=3e-4`` is
    ``algo.lr``, ``num_envs=4`` is ``env.num_envs``) — and finally apply the ``"section.field=value"`` strings of
    ``sets``. ``preset``: ``"auto"`` the one the config names, else the shipped preset of the algorithm for the env
    if there is one; ``"none"`` or ``None`` none (the code defaults); a task id with shipped presets (``"spread-v0"``)
    or a YAML file (see ``marlkit.experiment.presets``).
    """
    return resolve_run_config(algorithm, env, config, sets, preset, **fields)[0]


def resolve_run_config(
    algorithm: str | None = None,
    env: str | None = None,
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    sets: Iterable[str] = (),
    preset: str | Path | None = "auto",
    **fields: Any,
) -> tuple[RunConfig, dict[str, Origin]]:
    """``make_run_config``, and where the values it set came from: config paths (``"algo.lr"``, or a section
    such as ``"env.kwargs"``) to origins in the order they were applied; a value under none of them is a default."""
    if isinstance(config, (str, Path)):
        data = _read_yaml(config)
    elif isinstance(config, RunConfig):
        data = config.to_dict()
    else:
        data = dict(config or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{config} must hold a mapping with keys algorithm, env, experiment, algo, preset")
    origins: dict[str, Origin] = {}
    from_file = Origin("config", str(config) if isinstance(config, (str, Path)) else "")
    _record(origins, _leaves(data), from_file)
    if algorithm is not None:
        if "algorithm" in data and data["algorithm"] != algorithm:
            raise ConfigError(
                f"the config says algorithm: {data['algorithm']} but {algorithm!r} was asked for; drop one of them"
            )
        data["algorithm"] = algorithm
        _record(origins, ["algorithm"], Origin("field", "algorithm"))
    if env is not None:
        env_data = data.get("env") or {}
        if not isinstance(env_data, dict):
            raise ConfigError(f"env must be a mapping of EnvConfig fields, got {env_data!r}")
        data["env"] = {**env_data, "id": env}
        _record(origins, ["env.id"], Origin("field", "env"))
    if "algorithm" not in data:
        raise ConfigError("name an algorithm (e.g. mappo; see `marlkit algos`) or give a config that has one")
    if "env" not in data:
        raise ConfigError("name an environment (e.g. spread-v0; see `marlkit envs`) or give a config that has one")
    cfg = RunConfig.from_dict(data)  # the config's own keys and values are checked before a preset joins them
    chosen = cfg.preset if preset == AUTO and "preset" in data else preset
    found = select(chosen, cfg.algorithm, cfg.env.id)
    if found is not None:
        _check_preset(found, cfg.env.id)
        cfg = RunConfig.from_dict({**found.under(data), "preset": found.name})
        origins = {**{path: Origin("preset", found.file) for path in found.settings()}, **origins}
    else:
        cfg = dataclasses.replace(cfg, preset=None)
    if preset != AUTO:
        _record(origins, ["preset"], Origin("field", "preset"))
    elif found is not None and "preset" not in data:
        _record(origins, ["preset"], Origin("preset", found.file))
    for name, value in fields.items():
        if value is None:
            continue
        if "." in name:
            cfg = set_path(cfg, name, value)
            _record(origins, [name], Origin("field", name))
            continue
        parts = (("experiment", cfg.experiment), ("env", cfg.env), ("algo", cfg.algo))
        sections = [s for s, obj in parts if name in {f.name for f in dataclasses.fields(obj)}]
        if len(sections) > 1:
            raise ConfigError(f"{name!r} is a field of {' and '.join(sections)}; say which, e.g. {sections[0]}.{name}")
        if not sections:
            known = [f"{s}.{f.name}" for s, obj in parts for f in dataclasses.fields(obj)]
            section_of = {k.split(".", 1)[1]: k for k in known}
            hint = did_you_mean(name, section_of, show=lambda k: repr(section_of[k]))  # noqa: B023 - called at once
            raise ConfigError(f"unknown config key {name!r}{hint}")
        cfg = set_path(cfg, f"{sections[0]}.{name}", value)
        _record(origins, [f"{sections[0]}.{name}"], Origin("field", name))
    for assignment in sets:
        cfg = override(cfg, assignment)
        _record(origins, [assignment.partition("=")[0].strip()], Origin("set", assignment))
    return cfg, origins


def _check_preset(preset: Preset, env_id: str) -> None:
    """Check a preset's values exactly as a config file's are checked (unknown keys with the nearest valid one,
    types, ranges), the error naming the preset's file."""
    try:
        RunConfig.from_dict({"algorithm": preset.algorithm, "env": {**preset.env, "id": env_id}, "algo": preset.algo})
    except ConfigError as e:
        raise ConfigError(f"{preset.where}: {e}") from None


def _leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
    """The paths of the values in nested mappings (an empty mapping holds none: it sets nothing)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def _record(origins: dict[str, Origin], paths: Iterable[str], origin: Origin) -> None:
    for path in paths:
        origins.pop(path, None)  # re-inserted last: the order is the order values were applied
        origins[path] = origin


def _read_yaml(path: str | Path) -> Any:
    """The data of a YAML config file (a run directory means its config.yaml); a parse error is a one-line
    ``ConfigError`` naming the file and where it failed."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a YAML text file (it is not UTF-8)") from None
    return {} if data is None else data


def _plain(x: Any) -> Any:
    """Tuples become lists so that YAML stays plain (from_dict turns them back into tuples)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ----------------------------------------------------------------------------------------------- run directory
def default_run_name(cfg: RunConfig) -> str:
    env = cfg.env.id.replace(":", "-")  # pz:simple_spread_v3: no colon in folder names
    return f"{cfg.algorithm}_{env}_s{cfg.experiment.seed}_{time.strftime('%Y%m%d-%H%M%S')}"


def new_run_dir(cfg: RunConfig) -> Path:
    """Create the run directory of a new run; an explicit name that already holds a run is an error."""
    out = Path(cfg.experiment.out)
    name = cfg.experiment.name or default_run_name(cfg)
    path = out / name
    if path.exists() and any(path.iterdir()):
        if cfg.experiment.name is not None:
            raise FileExistsError(
                f"run directory {path} already exists; use --resume {path} to continue it "
                f"or choose another experiment.name"
            )
        i = 1
        while (out / f"{name}-{i}").exists():
            i += 1
        path = out / f"{name}-{i}"
    path.mkdir(parents=True, exist_ok=True)
    (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
    (path / MEDIA_DIR).mkdir(exist_ok=True)
    return path


@dataclass
class RunResult:
    """What ``Runner.run`` and ``marlkit.train`` return."""

    run_dir: Path
    """The run directory."""
    env_steps: int
    """Env-steps trained."""
    metrics: dict[str, float]
    """The final evaluation (``eval/...``) and the last training row (``train/...``, ``loss/...``)."""
    eval: dict[str, Any]
    """The content of eval.json."""
    checkpoint: Path | None
    """The final checkpoint."""

    @property
    def eval_return(self) -> float:
        """Mean per-agent evaluation return of the final policy."""
        return float(self.eval["episode_return"]["mean"])
