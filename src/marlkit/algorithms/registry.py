"""The one registry of algorithms: name -> (class, config class, preset), which action spaces each supports, and
``algo_config``: an algorithm's config built from its defaults, its preset and plain data, every key checked."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from marlkit.core.config import ConfigError, check, from_dict
from marlkit.core.errors import did_you_mean


@dataclass(frozen=True)
class AlgoSpec:
    """How to build one registered algorithm."""

    name: str
    entry_point: str
    """``"module:Class"``; the class takes ``(env, config, seed)``."""
    config_entry_point: str
    """``"module:ConfigClass"``, a frozen dataclass of hyper-parameters."""
    preset: dict[str, Any] = field(default_factory=dict)
    """Config values that make this name what it is (e.g. MAPPO = PPO with a centralised critic)."""
    action_spaces: tuple[str, ...] = ("Discrete", "Box")
    description: str = ""
    tabular: bool = False
    """Indexes observations in a table: trains only on envs with countable or ``finite_observations``."""
    example_config: str = ""
    """``"module:function"`` giving, for an env, an ``algo`` mapping that trains on it; for algorithms whose config
    must name the env's groups (``teams``), so no default fits every env. The registry-driven tests use it."""
    env_kind: str = "batched"
    """The kind of env it trains on (``marlkit.envs.registry.env_kind``): ``"batched"`` array envs, ``"text"`` games
    or ``"referential"``; a learner of another kind than batched is a ``marlkit.core.GameLearner``."""

    def load(self) -> tuple[type, type]:
        out = []
        for ep in (self.entry_point, self.config_entry_point):
            module, _, attr = ep.partition(":")
            out.append(getattr(importlib.import_module(module), attr))
        return out[0], out[1]

    def default_config(self) -> Any:
        _, config_cls = self.load()
        return replace(config_cls(), **self.preset)

    def config_for(self, env: Any) -> dict[str, Any]:
        """An ``algo`` mapping that trains on ``env``: ``example_config``'s, or ``{}`` (the defaults)."""
        if not self.example_config:
            return {}
        module, _, attr = self.example_config.partition(":")
        return getattr(importlib.import_module(module), attr)(env)


_ALGOS: dict[str, AlgoSpec] = {}


def register_algo(spec: AlgoSpec) -> None:
    if spec.name in _ALGOS:
        raise ValueError(f"algorithm {spec.name!r} is already registered")
    _ALGOS[spec.name] = spec


def list_algos(env_kind: str | None = None) -> list[str]:
    """Registered algorithms, sorted; those training on ``env_kind`` envs (``"batched"``, ``"text"``) if given."""
    return sorted(name for name, s in _ALGOS.items() if env_kind is None or s.env_kind == env_kind)


def algo_spec(name: str) -> AlgoSpec:
    if name in _ALGOS:
        return _ALGOS[name]
    hint = did_you_mean(name, _ALGOS, n=2, cutoff=0.4)
    raise KeyError(f"unknown algorithm {name!r}{hint} (registered: {', '.join(list_algos())})")


def algo_config(algorithm: str, algo: Any = None, where: str = "algo", algorithm_key: str = "algorithm") -> Any:
    """The config dataclass of ``algorithm``: its defaults and preset, read over by ``algo`` (``None``, a mapping
    of its fields, or the config itself), every key and value checked. ``where`` names the section in errors
    (``algo``; a team member's is ``algo.members.NAME.config``), ``algorithm_key`` the field naming the algorithm."""
    try:
        spec = algo_spec(algorithm)
    except KeyError as e:
        raise ConfigError(f"{algorithm_key}: {e.args[0]}") from None
    _, config_cls = spec.load()
    if algo is None:
        algo = spec.default_config()
    elif isinstance(algo, dict):
        algo = from_dict(config_cls, {**asdict(spec.default_config()), **algo}, f"{where}.")
    elif not isinstance(algo, config_cls):
        raise ConfigError(
            f"{where} must be a {config_cls.__name__} (or a mapping of its fields) for algorithm "
            f"{algorithm!r}, got {type(algo).__name__}"
        )
    for key, value in spec.preset.items():  # e.g. mappo is ppo *with* a centralised critic
        check(
            getattr(algo, key) == value,
            f"{where}.{key}",
            f"{value!r} for algorithm {algorithm!r} (that is what {algorithm} means; pick another algorithm instead)",
            getattr(algo, key),
        )
    return algo


def supports(spec: AlgoSpec, env: Any) -> bool:
    """Whether the algorithm can train on ``env``."""
    return unsupported_reason(spec, env) is None


def kind_reason(spec: AlgoSpec, env_id: str) -> str | None:
    """Why the algorithm cannot train on the env ``env_id`` is of another kind (a text game for an array algorithm,
    or the other way round), or None; an unknown id raises ``UnknownEnvError``."""
    from marlkit.envs.registry import env_kind

    kind = env_kind(env_id)
    if kind == spec.env_kind:
        return None
    what = {"batched": "a batched env", "text": "a text game", "referential": "the referential game"}[kind]
    return f"{env_id} is {what}; algorithms that train on it: {', '.join(list_algos(kind))}"


def unsupported_reason(spec: AlgoSpec, env: Any) -> str | None:
    """Why the algorithm cannot train on ``env`` (its action spaces, or a tabular learner's observations), or None."""
    found = {g: type(env.group_action_space(g)).__name__ for g in env.groups}
    if not all(name in spec.action_spaces for name in found.values()):
        return f"{spec.name} supports {', '.join(spec.action_spaces)} actions; this env has {found}"
    if spec.tabular and not getattr(env, "finite_observations", False):
        from marlkit.algorithms.tabular import space_size

        uncountable = {
            g: str(env.group_observation_space(g))
            for g in env.groups
            if space_size(env.group_observation_space(g)) is None
        }
        if uncountable:
            return (
                f"{spec.name} keeps a table row per observation, but this env's observations are not countable "
                f"({uncountable}); use a function approximator such as iql, vdn, qmix, ippo or mappo"
            )
    return None


# ------------------------------------------------------------------------------------ the registered algorithms
register_algo(
    AlgoSpec(
        "ippo",
        "marlkit.algorithms.ppo:PPO",
        "marlkit.algorithms.ppo:PPOConfig",
        {"centralised_critic": False},
        description="independent PPO (de Witt et al. 2020)",
    )
)
register_algo(
    AlgoSpec(
        "mappo",
        "marlkit.algorithms.ppo:PPO",
        "marlkit.algorithms.ppo:PPOConfig",
        {"centralised_critic": True},
        description="PPO with a centralised critic on state() (Yu et al. 2022)",
    )
)
register_algo(
    AlgoSpec(
        "iql-tabular",
        "marlkit.algorithms.tabular:TabularQ",
        "marlkit.algorithms.tabular:TabularConfig",
        action_spaces=("Discrete",),
        tabular=True,
        description="independent tabular Q-learners (Watkins & Dayan 1992; Claus & Boutilier 1998)",
    )
)
register_algo(
    AlgoSpec(
        "jal",
        "marlkit.algorithms.tabular:JointActionLearner",
        "marlkit.algorithms.tabular:TabularConfig",
        action_spaces=("Discrete",),
        tabular=True,
        description="joint-action learners with opponent models (Claus & Boutilier 1998)",
    )
)
register_algo(
    AlgoSpec(
        "iql",
        "marlkit.algorithms.dqn:DQN",
        "marlkit.algorithms.dqn:DQNConfig",
        action_spaces=("Discrete",),
        description="independent deep Q-learning (Tampuu et al. 2017)",
    )
)
register_algo(
    AlgoSpec(
        "vdn",
        "marlkit.algorithms.vdn:VDN",
        "marlkit.algorithms.vdn:VDNConfig",
        action_spaces=("Discrete",),
        description="value-decomposition networks (Sunehag et al. 2018)",
    )
)
register_algo(
    AlgoSpec(
        "qmix",
        "marlkit.algorithms.qmix:QMIX",
        "marlkit.algorithms.qmix:QMIXConfig",
        action_spaces=("Discrete",),
        description="monotonic value mixing on state() (Rashid et al. 2018)",
    )
)
register_algo(
    AlgoSpec(
        "ia2c",
        "marlkit.algorithms.a2c:A2C",
        "marlkit.algorithms.a2c:A2CConfig",
        {"centralised_critic": False},
        description="independent A2C (Mnih et al. 2016)",
    )
)
register_algo(
    AlgoSpec(
        "maa2c",
        "marlkit.algorithms.a2c:A2C",
        "marlkit.algorithms.a2c:A2CConfig",
        {"centralised_critic": True},
        description="A2C with a centralised critic on state() (Papoudakis et al. 2021)",
    )
)
register_algo(
    AlgoSpec(
        "maddpg",
        "marlkit.algorithms.maddpg:MADDPG",
        "marlkit.algorithms.maddpg:MADDPGConfig",
        action_spaces=("Discrete", "Box"),
        description="centralised critics on state() and all actions (Lowe et al. 2017)",
    )
)
register_algo(
    AlgoSpec(
        "token-rl",
        "marlkit.llm.text_learner:TokenRLLearner",
        "marlkit.llm.text_learner:TokenRLRunConfig",
        action_spaces=("Text",),
        env_kind="text",
        description="PPO or REINFORCE on the tokens of a tiny language model playing a text game",
    )
)
register_algo(
    AlgoSpec(
        "signalling",
        "marlkit.algorithms.signalling:Signalling",
        "marlkit.algorithms.signalling:SignallingConfig",
        action_spaces=("MultiDiscrete", "Discrete"),
        env_kind="referential",
        description="a speaker and a listener trained end to end, REINFORCE or Gumbel-softmax "
        "(Lazaridou et al. 2017; Havrylov & Titov 2017)",
    )
)
register_algo(
    AlgoSpec(
        "teams",
        "marlkit.algorithms.teams:Teams",
        "marlkit.algorithms.teams:TeamsConfig",
        example_config="marlkit.algorithms.teams:example_config",
        description="a learner or fixed policy per group, e.g. MADDPG predators vs a random prey",
    )
)
register_algo(
    AlgoSpec(
        "happo",
        "marlkit.algorithms.happo:HAPPO",
        "marlkit.algorithms.happo:HAPPOConfig",
        {"centralised_critic": True, "share_parameters": False},
        description="heterogeneous-agent PPO: agents updated in a random order, advantages corrected (Kuba et al. 2022)",
    )
)
