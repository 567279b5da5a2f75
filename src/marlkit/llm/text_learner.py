"""Token RL as a learner of the runner: ``marlkit train token-rl <text-game>``.

The run is the one every learner has (run directory, ``train/``, ``loss/`` and ``perf/`` keys, progress bar,
checkpoints, ``--resume``); what differs is what feeds the learner and what it learns:

* The env is the run's ``marlkit.envs.text.TextGames``: the registered id and its options, and how many copies are
  played at once (``env.num_envs``). Each agent of the game is a group of its own.
* ``TokenRLLearner`` is ``marlkit.llm.token_rl.TokenRL`` behind the ``Learner`` contract. Its model is built from
  the config, nothing is downloaded: a GPT-2 of ``layers`` layers and width ``width`` (``marlkit.llm.tiny``) over a
  word-level tokenizer of the words the game prints in ``vocab_episodes`` episodes of random allowed answers. Where
  a game lists the answers allowed now (``TextEnv.allowed_answers``: a legal move) the model answers with one of
  them (``constrain``), elsewhere in free text.
* ``TextGameSource`` is its ``BatchSource``: each batch is ``episodes_per_update`` whole episodes played by the
  model, the games of batch ``k`` seeded with ``(seed, k)`` as ``TokenRL.train`` seeds them. An env-step of a text
  game is one step of one copy (a turn of every agent to act), so a batch holds the turns its episodes took.

Evaluation plays ``experiment.eval_episodes`` episodes with the current policy (sampling, on games seeded with the
evaluation seed) and reports every agent's return, episode lengths in turns and the outcome's counts (completed,
invalid attempts, messages, tokens, and the game's numeric extras).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from marlkit.core import Capabilities, LearnerBase, PolicySpaces
from marlkit.core.config import ConfigError
from marlkit.data.rollout import EpisodeStats
from marlkit.envs.text.base import TextEnv, TextOutcome
from marlkit.envs.text.registry import TextGames
from marlkit.llm.token_rl import Batch, TokenRL, TokenRLConfig, TokenRLSettings, keep_lines, observation_prompt

if TYPE_CHECKING:
    from marlkit.core import Policy


@dataclass(frozen=True)
class TokenRLRunConfig(TokenRLSettings):
    """Token RL in a run: how batches are played and learned from (``TokenRLSettings``), and the tiny model trained.
    The copies are ``env.num_envs`` and the seed ``experiment.seed``."""

    width: int = 64
    """Width of the GPT-2 that is trained (built from this config: nothing is downloaded)."""
    layers: int = 2
    """Its transformer layers."""
    heads: int = 4
    """Its attention heads (dividing width)."""
    vocab_episodes: int = 20
    """Episodes of random allowed answers whose words make the tokenizer (the model says only words the game shows)."""
    constrain: bool = True
    """Answer with one of the answers the game allows now where it lists them (a legal move); free text elsewhere."""
    prompt_lines: tuple[str, ...] = ()
    """Show the model only the observation's lines that begin with one of these (e.g. [" ", "Your turn"]: the board
    and the legal moves of tic-tac-toe); empty: the whole observation."""

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueError as e:
            raise ConfigError(f"algo.{e}") from None
        for name in ("width", "layers", "heads", "vocab_episodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"algo.{name} = {value!r} is not allowed: an integer >= 1")
        if self.width % self.heads:
            raise ConfigError(f"algo.heads = {self.heads} is not allowed: a divisor of algo.width = {self.width}")

    def settings(self) -> TokenRLSettings:
        return TokenRLSettings(**{f.name: getattr(self, f.name) for f in fields(TokenRLSettings)})


def _allowed(env: TextEnv, agent: str) -> list[str] | None:
    return env.allowed_answers(agent)


def _free(env: TextEnv, agent: str) -> None:
    return None


class TokenRLLearner(LearnerBase):
    """``TokenRL`` as a ``GameLearner``: updated on the batches of a ``TextGameSource`` (see the module docstring)."""

    #: On-policy: the turns its current model just played, used for one update (PPO's epochs inside it).
    capabilities = Capabilities("rollout")
    extras_spec: ClassVar[dict[str, dict[str, tuple[int, ...]]]] = {}

    def __init__(self, env: TextGames, config: TokenRLRunConfig, seed: int = 0) -> None:
        from marlkit.llm.games import game_texts
        from marlkit.llm.tiny import tiny_gpt2, word_tokenizer

        self.config, self.games = config, env
        self.spaces = PolicySpaces.from_env(env)
        answers = _allowed if config.constrain else _free
        tokenizer = word_tokenizer(game_texts(env.make, answers, config.vocab_episodes, seed=seed))
        model = tiny_gpt2(tokenizer, seed, width=config.width, layers=config.layers, heads=config.heads)
        rl = TokenRLConfig(**dataclasses.asdict(config.settings()), num_envs=env.num_envs, seed=seed)
        prompt = keep_lines(*config.prompt_lines) if config.prompt_lines else observation_prompt
        self.trainer = TokenRL(
            env.make, model, tokenizer, rl, actions=answers if config.constrain else None, prompt=prompt
        )

    # ------------------------------------------------------------------------------------------------ acting
    def act(self, obs: Any, state: Any, info: dict[str, Any], explore: bool = True) -> Any:
        raise TypeError("token-rl answers text games in text: it has no array act (TextGameSource plays it)")

    def policy(self, seed: int | None = None) -> Policy:
        raise TypeError("token-rl has no weights-only array policy: its model and tokenizer are in its state()")

    def source_for(self, games: TextGames) -> TextGameSource:
        """What feeds it on ``games``: whole episodes played by its model."""
        return TextGameSource(self, games)

    def evaluate_on(self, games: TextGames, episodes: int, seed: int) -> EpisodeStats:
        """Episodes of ``games`` played by the current policy (sampling, from a generator seeded with ``seed``)."""
        return outcome_stats(
            self.trainer.evaluate(episodes, seed, make_env=games.make, num_envs=games.num_envs), games.agents
        )

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, batch: Batch) -> dict[str, float]:
        """One update of ``TokenRL``; its metrics as ``loss/...`` and ``train/...`` (by group of shared weights
        when the agents train separate models)."""
        metrics = self.trainer.update(batch)
        one = len(self.trainer.groups) == 1
        out = {}
        for key, value in metrics.items():
            group, _, rest = key.partition("/")
            where = "" if one else f"{group}/"
            if rest.startswith("losses/"):
                out[f"loss/{where}{rest.removeprefix('losses/')}"] = value
            else:
                out[f"train/{where}{rest}"] = value
        out["train/turns"] = float(sum(len(t) for t in batch.turns.values()))
        return out

    # -------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state(self, state: dict[str, Any]) -> None:
        self.trainer.load_state_dict(state)


class TextGameSource:
    """The ``BatchSource`` of a ``TokenRLLearner``: ``episodes_per_update`` whole episodes of ``games`` per batch,
    played by the learner's model; batch ``k``'s games are seeded with ``(seed, k)``."""

    def __init__(self, learner: TokenRLLearner, games: TextGames) -> None:
        self.learner, self.games = learner, games
        self.batches = 0
        #: The turns of the last batch; 0 before the first (a batch is whole episodes: its length is not known ahead).
        self.steps_per_batch = 0

    def collect(self) -> tuple[Batch, EpisodeStats]:
        trainer = self.learner.trainer
        seed = int(np.random.SeedSequence([trainer.config.seed, self.batches]).generate_state(1)[0])
        batch = trainer.play(
            trainer.config.episodes_per_update, seed, make_env=self.games.make, num_envs=self.games.num_envs
        )
        self.batches += 1
        self.steps_per_batch = sum(o.turns for o in batch.outcomes)
        return batch, outcome_stats(batch.outcomes, self.games.agents)

    def state(self) -> dict[str, Any]:
        return {"batches": self.batches, "steps_per_batch": self.steps_per_batch}

    def load_state(self, state: dict[str, Any]) -> None:
        self.batches, self.steps_per_batch = int(state["batches"]), int(state["steps_per_batch"])


def outcome_stats(outcomes: list[TextOutcome], agents: tuple[str, ...]) -> EpisodeStats:
    """Text-game outcomes as ``EpisodeStats``: every agent's return (each agent a group), lengths in turns, and per
    episode whether it was completed, the invalid attempts, messages and tokens, and the game's numeric extras."""
    stats = EpisodeStats()
    for o in outcomes:
        for a in agents:
            stats.returns.setdefault(a, []).append(np.array([o.scores.get(a, 0.0)]))
        stats.lengths.append(o.turns)
        counts = {
            "completed": float(o.completed),
            "invalid": float(sum(o.invalid.values())),
            "messages": float(o.messages),
            "tokens": float(o.tokens),
        }
        counts.update(
            {
                k: float(v)
                for k, v in o.extra.items()
                if isinstance(v, (int, float, bool, np.number)) and not isinstance(v, np.ndarray)
            }
        )
        for k, v in counts.items():
            stats.metrics.setdefault(k, []).append(v)
    return stats
