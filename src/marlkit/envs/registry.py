"""The one registry of environments: versioned id -> constructor, and ``pz:`` ids of PettingZoo env modules.

It answers for every id marlkit knows, text games included: ``env_kind(id)`` says whether an id is a batched env
(``make`` builds it: arrays, the contract the array algorithms train on), a text game (``marlkit.envs.text``
keeps their constructors; ``make_text`` builds one copy in strings) or the referential game (a sampler of
batches whose agents train end to end, ``marlkit.envs.text.referential``), and ``make`` given another kind's id
says so. ``build`` makes what a run of any kind trains on.

Ids carry a version (``spread-v0``); bump it when dynamics or rewards change. Constructors are named as
``"module:attribute"`` strings and imported on first use, so ``import marlkit`` stays light.

An id ``pz:MODULE`` names a PettingZoo env module, built through ``marlkit.envs.from_pettingzoo``. Since an id can
come from a config file someone else wrote, and importing a module runs its code, ``pz:`` ids resolve only to an
allow-list: the env modules of ``PETTINGZOO_PACKAGES`` (``pz:simple_spread_v3`` is ``mpe2.simple_spread_v3``,
``pz:pettingzoo.sisl.pursuit_v4`` is that module) and the modules installed packages register under the
``marlkit.pettingzoo`` entry-point group, e.g. in a package's ``pyproject.toml``::

    [project.entry-points."marlkit.pettingzoo"]
    my_game_v0 = "my_package.envs.my_game_v0"   # pz:my_game_v0 and pz:my_package.envs.my_game_v0

Any other module is imported only when trusted explicitly (``trust_module=True``; ``--trust-module`` on the
command line). Packages found in the current directory are not consulted for entry points: ``python -m marlkit``
puts that directory on ``sys.path``, and it may be a downloaded run directory.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from marlkit.core.errors import did_you_mean
from marlkit.envs.base import MultiAgentEnv


@dataclass(frozen=True)
class EnvSpec:
    """How to build one registered environment."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> Callable[..., MultiAgentEnv]:
        module, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attr)


class UnknownEnvError(KeyError):
    """An environment id that names no registered environment and no allowed (or trusted) PettingZoo module."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_REGISTRY: dict[str, EnvSpec] = {}


def register(id: str, entry_point: str, kwargs: dict[str, Any] | None = None, description: str = "") -> None:
    """Register an environment under a versioned id such as ``"spread-v0"``."""
    name, sep, version = id.rpartition("-v")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"environment ids carry a version, like 'spread-v0'; got {id!r}")
    if id in _REGISTRY:
        raise ValueError(f"environment id {id!r} is already registered")
    _REGISTRY[id] = EnvSpec(id, entry_point, dict(kwargs or {}), description)


def list_envs() -> list[str]:
    """All registered environment ids, sorted."""
    return sorted(_REGISTRY)


EnvKind = Literal["batched", "text", "referential"]
"""``"batched"``: built by ``make`` (arrays, ``num_envs`` copies); ``"text"``: a text game (``make_text``);
``"referential"``: the referential game."""

#: Ids of the referential game -> its constructor (``seed``, and the ``ReferentialConfig`` fields as options).
_REFERENTIAL = {"referential-v0": "marlkit.envs.text.referential:make_referential"}


def _text_ids() -> list[str]:
    from marlkit.envs.text.registry import list_text_envs

    return list_text_envs()


def env_kinds() -> dict[str, EnvKind]:
    """Every id ``env_kind`` answers for (``pz:`` ids aside), with its kind: the batched envs, then the text games,
    then the referential game, each sorted."""
    kinds: dict[str, EnvKind] = dict.fromkeys(list_envs(), "batched")
    kinds.update(dict.fromkeys(_text_ids(), "text"))
    kinds.update(dict.fromkeys(sorted(_REFERENTIAL), "referential"))
    return kinds


def spec(env_id: str) -> EnvSpec:
    """The spec of a registered batched env; a text game's id or an unknown id raises an error saying so (naming
    the nearest ids)."""
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    if env_id in _text_ids():
        raise UnknownEnvError(
            f"{env_id!r} is a text game, not a batched env: marlkit.envs.text.make_text builds "
            f"it (make builds {', '.join(list_envs())})"
        )
    if env_id in _REFERENTIAL:
        raise UnknownEnvError(
            f"{env_id!r} is the referential game, not a batched env: build() makes it (make builds "
            f"{', '.join(list_envs())})"
        )
    raise _unknown(env_id)


def _unknown(env_id: str) -> UnknownEnvError:
    hint = did_you_mean(env_id, [*_REGISTRY, *_text_ids(), *_REFERENTIAL], n=3, cutoff=0.4)
    return UnknownEnvError(
        f"unknown environment id {env_id!r}{hint} (registered: {', '.join(list_envs())}; "
        f"text games: {', '.join(_text_ids())}; {', '.join(_REFERENTIAL)}; or "
        f"{PETTINGZOO_PREFIX}MODULE for a PettingZoo env)"
    )


def env_kind(env_id: str) -> EnvKind:
    """Whether ``env_id`` is a batched env (a registered id or a ``pz:`` id) or a text game; an unknown id raises
    ``UnknownEnvError`` naming the nearest ids."""
    if is_pettingzoo_id(env_id) or is_openspiel_id(env_id) or env_id in _REGISTRY:
        return "batched"
    if env_id in _text_ids():
        return "text"
    if env_id in _REFERENTIAL:
        return "referential"
    raise _unknown(env_id)


def build(env_id: str, num_envs: int = 1, seed: int | None = None, *, trust_module: bool = False, **kwargs: Any) -> Any:
    """What a run of ``env_id`` trains on, whatever its kind: ``make``'s batched env of ``num_envs`` copies; for a
    text game its ``TextGames`` (copies made as they are played, seeded by whoever plays them); the referential
    game seeded with ``seed``. An unknown option raises an error naming the nearest valid one."""
    kind = env_kind(env_id)
    if kind == "text":
        from marlkit.envs.text.registry import TextGames

        return TextGames(env_id, dict(kwargs), num_envs)
    if kind == "referential":
        module, _, attr = _REFERENTIAL[env_id].partition(":")
        return getattr(importlib.import_module(module), attr)(seed=seed, **kwargs)
    return make(env_id, num_envs=num_envs, seed=seed, trust_module=trust_module, **kwargs)


def check_id(env_id: str) -> None:
    """Raise ``UnknownEnvError`` unless ``env_id`` is registered (of any kind) or a ``pz:`` id that may be built.

    Imports no module outside the allow-list: a ``pz:`` id naming another module passes here and is judged when it
    is made, where ``trust_module`` is known.
    """
    if is_openspiel_id(env_id):
        _openspiel_name(env_id)
        return
    if not is_pettingzoo_id(env_id):
        env_kind(env_id)
        return
    module, allowed = _pettingzoo_target(env_id)
    if allowed and not _installed(module):
        raise UnknownEnvError(f"{env_id!r}: the PettingZoo env module {module} is not installed")


def make(
    env_id: str, num_envs: int = 1, seed: int | None = None, *, trust_module: bool = False, **kwargs: Any
) -> MultiAgentEnv:
    """Build ``num_envs`` copies of a registered environment, or of a ``pz:`` PettingZoo env module.

    Keyword arguments override the registered defaults (an unknown one raises an error naming the nearest valid
    one); for a ``pz:`` id they go to the module's ``parallel_env``. ``trust_module`` allows a ``pz:`` id to import
    a module outside the allow-list (see the module docstring).
    """
    if is_pettingzoo_id(env_id):
        from_pettingzoo = EnvSpec(env_id, PETTINGZOO_BRIDGE).load()
        module = pettingzoo_module(env_id, trust_module=trust_module)
        factory = getattr(module, "parallel_env", None) or getattr(module, "env", None)
        if factory is None:
            raise UnknownEnvError(f"{env_id!r}: module {module.__name__} has no parallel_env (or env) to build from")
        return from_pettingzoo(functools.partial(factory, **kwargs), num_envs=num_envs, seed=seed)
    if is_openspiel_id(env_id):
        from_openspiel = EnvSpec(env_id, OPENSPIEL_BRIDGE).load()
        return from_openspiel(_openspiel_name(env_id), num_envs=num_envs, seed=seed, **kwargs)
    s = spec(env_id)
    ctor = s.load()
    params = inspect.signature(ctor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = [n for n in params if n not in ("self", "num_envs", "seed")]
        for key in kwargs:
            if key not in params or key in ("num_envs", "seed"):
                raise TypeError(
                    f"{env_id} has no option {key!r}{did_you_mean(key, allowed)} "
                    f"(options: {', '.join(allowed) or 'none'})"
                )
    return ctor(num_envs=num_envs, seed=seed, **{**s.kwargs, **kwargs})


# ------------------------------------------------------------------------------------ PettingZoo env modules
#: An env id ``pz:MODULE`` names a PettingZoo env module, built through ``marlkit.envs.from_pettingzoo``.
PETTINGZOO_PREFIX = "pz:"
#: The constructor of a ``pz:`` id's env, named as every constructor here is (the bridge imports this registry for
#: ``to_pettingzoo(id)``, so the registry names it rather than importing it).
PETTINGZOO_BRIDGE = "marlkit.envs.pettingzoo:from_pettingzoo"
#: The packages whose env modules ``pz:`` ids may name; searched in this order for a bare ``pz:NAME``.
PETTINGZOO_PACKAGES = ("mpe2", "pettingzoo.sisl", "pettingzoo.butterfly", "pettingzoo.classic", "pettingzoo.atari")
#: The entry-point group through which an installed package adds env modules (``NAME = "package.module"``).
PETTINGZOO_ENTRY_POINTS = "marlkit.pettingzoo"


def is_pettingzoo_id(env_id: str) -> bool:
    return env_id.startswith(PETTINGZOO_PREFIX)


def pettingzoo_entry_points() -> dict[str, str]:
    """The env modules installed packages register under ``PETTINGZOO_ENTRY_POINTS``, as name -> module.

    Distributions in the current directory are left out (``python -m`` puts it on ``sys.path``).
    """
    from importlib import metadata

    cwd = os.path.realpath(os.getcwd())
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) != cwd]
    found: dict[str, str] = {}
    for dist in metadata.distributions(path=path):
        for ep in dist.entry_points.select(group=PETTINGZOO_ENTRY_POINTS):
            found.setdefault(ep.name, ep.module)
    return found


def pettingzoo_module(env_id: str, trust_module: bool = False) -> ModuleType:
    """The PettingZoo env module of a ``pz:`` id; one outside the allow-list is imported only if ``trust_module``."""
    module, allowed = _pettingzoo_target(env_id)
    if not (allowed or trust_module):
        registered = pettingzoo_entry_points()
        raise UnknownEnvError(
            f"{env_id!r} is not allowed: importing a module runs its code, so pz: ids name only the env modules of "
            f"{', '.join(PETTINGZOO_PACKAGES)} and those registered under the {PETTINGZOO_ENTRY_POINTS!r} entry-point "
            f"group ({', '.join(sorted(registered)) or 'none installed'}); if you trust {module}, pass "
            f"--trust-module (marlkit train/eval/render) or trust_module=True (Python)"
        )
    if not _installed(module):
        raise UnknownEnvError(f"{env_id!r}: no module {module} is installed")
    return importlib.import_module(module)


def _pettingzoo_target(env_id: str) -> tuple[str, bool]:
    """The module a ``pz:`` id names and whether it is on the allow-list; imports nothing outside it."""
    name = env_id[len(PETTINGZOO_PREFIX) :]
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise UnknownEnvError(
            f"{env_id!r} is not a PettingZoo env id: write {PETTINGZOO_PREFIX}NAME (e.g. "
            f"{PETTINGZOO_PREFIX}simple_spread_v3) or {PETTINGZOO_PREFIX}package.module"
        )
    registered = pettingzoo_entry_points()
    if "." in name:
        return name, name.rpartition(".")[0] in PETTINGZOO_PACKAGES or name in registered.values()
    for package in PETTINGZOO_PACKAGES:
        if _installed(f"{package}.{name}"):
            return f"{package}.{name}", True
    if name in registered:
        return registered[name], True
    hint = did_you_mean(name, [*registered, *_package_modules()])
    raise UnknownEnvError(
        f"{env_id!r}: no PettingZoo env module {name} in {', '.join(PETTINGZOO_PACKAGES)} nor "
        f"under the {PETTINGZOO_ENTRY_POINTS!r} entry-point group{hint} (write "
        f"{PETTINGZOO_PREFIX}NAME, e.g. {PETTINGZOO_PREFIX}simple_spread_v3, or "
        f"{PETTINGZOO_PREFIX}package.module)"
    )


def _package_modules() -> list[str]:
    """The module names in the installed ``PETTINGZOO_PACKAGES`` (listed from their folders, not imported)."""
    import pkgutil

    names = []
    for package in PETTINGZOO_PACKAGES:
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        if found is not None and found.submodule_search_locations:
            names += [m.name for m in pkgutil.iter_modules(found.submodule_search_locations)]
    return names


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # the parent package is missing (or lacks its own dependencies)
        return False


# ------------------------------------------------------------------------------------------- OpenSpiel games
#: An env id ``os:GAME`` names an OpenSpiel game (``os:kuhn_poker``), built by ``marlkit.envs.from_openspiel``;
#: ``make``'s keyword arguments are the game's parameters. Loading a game runs no code from outside OpenSpiel.
OPENSPIEL_PREFIX = "os:"
OPENSPIEL_BRIDGE = "marlkit.envs.openspiel:from_openspiel"


def is_openspiel_id(env_id: str) -> bool:
    return env_id.startswith(OPENSPIEL_PREFIX)


def _openspiel_name(env_id: str) -> str:
    """The game an ``os:`` id names; an error naming the nearest games when OpenSpiel has none by that name."""
    name = env_id[len(OPENSPIEL_PREFIX) :]
    if not _installed("pyspiel"):
        raise UnknownEnvError(f"{env_id!r} needs OpenSpiel: pip install open-spiel")
    import pyspiel

    names = pyspiel.registered_names()
    if name.partition("(")[0] not in names:
        hint = did_you_mean(name, names, n=3, cutoff=0.6)
        raise UnknownEnvError(
            f"{env_id!r}: OpenSpiel has no game {name!r}{hint} (pyspiel.registered_names() lists them)"
        )
    return name


# --------------------------------------------------------------------------------------- the registered envs
# One line per environment; nothing else in marlkit lists them.
register("climbing-v0", "marlkit.envs.matrix:climbing", description="Claus & Boutilier climbing game (cooperative)")
register(
    "penalty-v0", "marlkit.envs.matrix:penalty", description="Claus & Boutilier penalty game, cost k (cooperative)"
)
register("prisoners-dilemma-v0", "marlkit.envs.matrix:prisoners_dilemma", description="Prisoner's dilemma (mixed)")
register(
    "iterated-prisoners-dilemma-v0",
    "marlkit.envs.matrix:prisoners_dilemma",
    {"episode_length": 10},
    description="Prisoner's dilemma repeated for 10 rounds (mixed)",
)
register("stag-hunt-v0", "marlkit.envs.matrix:stag_hunt", description="Stag hunt (cooperative, risky)")
register("matching-pennies-v0", "marlkit.envs.matrix:matching_pennies", description="Matching pennies (competitive)")
register(
    "rock-paper-scissors-v0", "marlkit.envs.matrix:rock_paper_scissors", description="Rock-paper-scissors (zero sum)"
)
register(
    "biased-rock-paper-scissors-v0",
    "marlkit.envs.matrix:biased_rock_paper_scissors",
    description="Rock-paper-scissors, rock beats scissors by 2: Nash (1/4, 1/2, 1/4) (zero sum)",
)
register(
    "two-step-v0",
    "marlkit.envs.two_step:TwoStepGame",
    description="QMIX paper's two-step game: 8 needs a joint value VDN cannot represent (cooperative)",
)
register(
    "foraging-v0",
    "marlkit.envs.grid.foraging:Foraging",
    description="Level-based foraging, 8x8, 2 agents, 2 food (lbforaging rules; mixed)",
)
register(
    "foraging-coop-v0",
    "marlkit.envs.grid.foraging:Foraging",
    {"force_coop": True},
    description="Level-based foraging where every food needs all agents (cooperative)",
)
register(
    "pursuit-v0",
    "marlkit.envs.particles.pursuit:Pursuit",
    description="2 pursuers catch an evasive moving target among obstacles (cooperative, continuous world)",
)
register(
    "spread-v0",
    "marlkit.envs.particles.spread:Spread",
    description="Cooperative navigation: N agents cover N landmarks (mpe2 simple_spread_v3; cooperative)",
)
register(
    "tag-v0",
    "marlkit.envs.particles.tag:Tag",
    description="Predator-prey among obstacles (mpe2 simple_tag_v3; competitive)",
)
register(
    "leader-election-v0",
    "marlkit.envs.leader:LeaderElection",
    description="3 agents talk for a round, then must all name the one that can lead, known only to itself (cooperative)",
)
register(
    "speaker-listener-v0",
    "marlkit.envs.particles.speaker_listener:SpeakerListener",
    description="Cooperative communication: a speaker guides a listener (mpe2 simple_speaker_listener_v4)",
)
register(
    "kuhn-poker-v0",
    "marlkit.envs.poker:KuhnPoker",
    description="Kuhn poker, OpenSpiel's rules and information states (turn-based, zero-sum)",
)
register(
    "leduc-poker-v0",
    "marlkit.envs.poker:LeducPoker",
    description="Leduc hold'em, OpenSpiel's rules and information states (turn-based, zero-sum)",
)
# Multi-Agent MuJoCo bodies (needs the mujoco extra); agent_conf (the partition) and agent_obsk are options.
for _body, _conf in (("HalfCheetah", "2x3"), ("Ant", "2x4"), ("Ant", "4x2"), ("Walker2d", "2x3"), ("Hopper", "3x1")):
    register(
        f"mamujoco-{_body.lower()}-{_conf}-v0",
        "marlkit.envs.mujoco.mamujoco:MaMuJoCo",
        {"scenario": _body, "agent_conf": _conf},
        description=f"MaMuJoCo {_body} {_conf}: one body, agents drive its joints (Gymnasium v5 reward; cooperative)",
    )
