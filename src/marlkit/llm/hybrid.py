"""A mixed team trained together: a language-model speaker (token RL) and a neural listener (PPO) in
``speaker-listener-text-v0``.

The game (``marlkit.envs.text.speaker_listener_text``): a speaker that reads the goal landmark's colour in text says
a word; the listener hears it as the one-hot of the colour read (the last 3 of its 11 floats) and moves. Both get
the team reward ``-|p_listener - p_goal|^2`` at every step.

**One update** plays ``copies`` whole episodes side by side (update ``k``'s episodes seeded from ``(seed, k)``). At every step the speaker's turns of all copies are one batched generation
(``marlkit.llm.tokens.sample``), restricted to the answers ``red``/``green``/``blue`` (``TokenRL``'s constrained
answers, so even the untrained model names a colour), and the listener's actions are one batched forward of
its actor. Then, from the same episodes and the same rewards:

* the listener learns by PPO on its arrays: an MLP actor over its floats and a centralised MLP critic over them and
  the goal's one-hot (MAPPO-style; used only in training), GAE advantages (``marlkit.ops.gae``) and the house's
  clipped loss (``marlkit.ops.categorical_ppo_loss``), several epochs of minibatches;
* the speaker learns by ``TokenRL.update`` (PPO or REINFORCE on its tokens, ``HybridConfig.speaker``): its turn at
  step ``t`` is credited with the critic's GAE advantage of step ``t`` (the speaker config must use
  ``credit="to_go"`` with ``gamma=0``, so that advantage is the turn's return), an actor-critic estimate of what
  the word did to the team's future rewards, with far less variance than the raw reward-to-go.

**Controls** (``HybridConfig.message``): ``"speaker"`` is the team; ``"constant"`` replaces every message by the
same word (``red``) before the env reads it, so the listener hears nothing about the goal (the speaker's tokens are
then not trained: they change nothing); ``"deaf"`` zeroes the message in the listener's input, so it cannot use it.
A listener that cannot use the message can at best head for a point between the landmarks; the team beats that
only by communicating.

Why a function and not ``marlkit train``: the runner's learners act either on batched arrays (a ``Collector``) or on
whole text games (``TextGames``), and this env is neither (``TextVecEnv`` takes strings only); and a team of an
``llm`` learner with an ``algorithms`` learner would need the layer above both. So the team is built here from
``TokenRL`` (the speaker) and the loss functions of ``marlkit.ops`` (the listener), not from ``algorithms.PPO``.

Seeded: the speaker samples from ``TokenRL``'s generator, the listener from its own (both from ``seed``); the same
seed gives the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from marlkit.envs.text.base import TextOutcome
from marlkit.envs.text.speaker_listener_text import (
    COLOURS,
    LISTENER_ID,
    SPEAKER_ID,
    SpeakerListenerText,
    parse_colour,
)
from marlkit.llm.token_rl import Batch, TokenRL, TokenRLConfig, Turn, keep_lines
from marlkit.llm.tokens import sample
from marlkit.ops import categorical_ppo_loss, gae

MESSAGES = ("speaker", "constant", "deaf")
PROMPTS = ("goal", "line")
LINE_PROMPT = keep_lines("You are the speaker")  # the line naming the goal; the step counter adds nothing


def goal_prompt(agent: str, observation: str) -> str:
    """``"goal <colour>"``: the colour the speaker's observation names, last (see ``HybridConfig.prompt``)."""
    colour = parse_colour(LINE_PROMPT(agent, observation))
    if colour is None:
        raise ValueError(f"the speaker's observation names no colour: {observation!r}")
    return f"goal {COLOURS[colour]}"


@dataclass(frozen=True)
class ListenerConfig:
    """The listener's PPO; validated at construction."""

    lr: float = 3e-3
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    gamma: float = 0.95
    gae_lambda: float = 0.95
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64

    def __post_init__(self) -> None:
        for name in ("lr", "clip", "value_coef", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"listener.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("epochs", "minibatches", "hidden"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"listener.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"listener.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.entropy_coef < 0:
            raise ValueError(f"listener.entropy_coef must be >= 0, got {self.entropy_coef!r}")


def _speaker_defaults() -> TokenRLConfig:
    return TokenRLConfig(
        algorithm="ppo",
        episodes_per_update=16,
        num_envs=16,
        lr=3e-3,
        epochs=2,
        minibatch_turns=200,
        gamma=0.0,
        entropy_coef=0.02,
    )


@dataclass(frozen=True)
class HybridConfig:
    """A hybrid run: the speaker's token RL, the listener's PPO, the episodes per update, the control."""

    speaker: TokenRLConfig = field(default_factory=_speaker_defaults)
    listener: ListenerConfig = field(default_factory=ListenerConfig)
    copies: int = 16
    """Episodes played side by side per update (the speaker's and listener's batch)."""
    max_steps: int = 25
    message: Literal["speaker", "constant", "deaf"] = "speaker"
    """``"speaker"``: the team; ``"constant"``/``"deaf"``: the controls of the module docstring."""
    prompt: Literal["goal", "line"] = "goal"
    """The speaker's prompt: ``"goal"`` is ``"goal <colour>"`` (its observation's colour put last), ``"line"`` the
    observation's line naming the goal. With ``"goal"`` a GPT-2 with tied input and output embeddings starts with a
    small bias to repeat the colour (untrained, it names the goal about half the time instead of a third), which is
    what lets the two start to communicate within a short budget; see docs/llm.md."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {self.prompt!r}")
        if self.message not in MESSAGES:
            raise ValueError(f"message must be one of {MESSAGES}, got {self.message!r}")
        if not isinstance(self.copies, int) or self.copies < 1:
            raise ValueError(f"copies must be a positive integer, got {self.copies!r}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if not isinstance(self.speaker, TokenRLConfig) or not isinstance(self.listener, ListenerConfig):
            raise TypeError("speaker must be a TokenRLConfig and listener a ListenerConfig")
        if self.speaker.credit != "to_go" or self.speaker.gamma != 0.0:
            raise ValueError(
                "speaker needs credit='to_go' and gamma=0: each of its turns is credited with the critic's advantage "
                f"of its step, not a sum of rewards (got credit={self.speaker.credit!r}, gamma={self.speaker.gamma})"
            )


class ListenerNet(nn.Module):
    """An MLP actor (5 logits) over the listener's 11 floats and an MLP critic over them and the goal."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int) -> None:
        super().__init__()

        def mlp(inputs: int, out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, out))  # fmt: skip

        self.actor, self.critic = mlp(obs_dim, n_actions), mlp(obs_dim + len(COLOURS), 1)

    def forward(self, obs: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits from the listener's floats; the value from them and the goal's one-hot (the critic is
        centralised, as MAPPO's: it is used only in training, the listener acts without it)."""
        return self.actor(obs), self.critic(torch.cat([obs, goal], -1)).squeeze(-1)


class _ArraySeat:
    """Marks the listener's seat as not the language model's in ``TokenRL`` (its actions come from ``ListenerNet``)."""

    def act(self, observations: Sequence[str]) -> list[str]:
        raise RuntimeError("the listener acts with arrays; the hybrid loop plays it, not TokenRL")


def speaker_tokenizer() -> Any:
    """A word tokenizer over the speaker's prompts and the three colours (``marlkit.llm.tiny.word_tokenizer``)."""
    from marlkit.llm.tiny import word_tokenizer

    env = SpeakerListenerText()
    texts = [LINE_PROMPT(SPEAKER_ID, env.reset(seed=s)[0][SPEAKER_ID]) for s in range(30)]
    return word_tokenizer(texts, extra_words=("goal", *COLOURS))


class HybridTeam:
    """The speaker (a ``TokenRL`` over ``model``) and the listener (``ListenerNet`` + PPO); see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, config: HybridConfig) -> None:
        self.config = cfg = config
        self.prompt = goal_prompt if cfg.prompt == "goal" else LINE_PROMPT
        self.speaker = TokenRL(
            lambda: cast(Any, SpeakerListenerText(max_steps=cfg.max_steps)),  # TextEnv-like: the speaker's seat
            model,
            tokenizer,
            cfg.speaker,
            actions=lambda env, agent: COLOURS,
            prompt=self.prompt,
            fixed={LISTENER_ID: _ArraySeat()},
        )
        (self.group,) = self.speaker.groups.values()
        probe = SpeakerListenerText(max_steps=cfg.max_steps)
        obs_dim = int(np.prod(probe.observation_space(LISTENER_ID).shape or (0,)))
        action_space = probe.action_space(LISTENER_ID)
        assert isinstance(action_space, spaces.Discrete)  # HybridTeam plays the env with discrete listener actions
        n_actions = int(action_space.n)
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)
        self.listener = ListenerNet(obs_dim, n_actions, cfg.listener.hidden)
        torch.random.set_rng_state(torch_state)
        self.optimizer = torch.optim.Adam(self.listener.parameters(), lr=cfg.listener.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.updates_done = 0

    # ------------------------------------------------------------------------------------------- playing
    def _listener_input(self, obs: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(obs, dtype=torch.float32)
        if self.config.message == "deaf":
            x = x.clone()
            x[..., -3:] = 0.0
        return x

    def play(self, seed: int, *, greedy: bool = False, record: bool = True) -> dict[str, Any]:
        """Play ``copies`` episodes (seeded from ``seed``): the speaker's turns (a ``Batch``), the listener's arrays
        and the outcomes."""
        cfg = self.config
        envs = [SpeakerListenerText(max_steps=cfg.max_steps) for _ in range(cfg.copies)]
        seeds = np.random.SeedSequence(seed).generate_state(cfg.copies)
        obs = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
        constraint, spelled = self.speaker._constraint(cast(Any, envs[0]), SPEAKER_ID)
        turns: list[list[Turn]] = [[] for _ in envs]
        arrays: dict[str, list[Any]] = {k: [] for k in ("obs", "goal", "actions", "logp", "values", "rewards")}
        goal = torch.eye(len(COLOURS))[[env._goal for env in envs]]
        outcomes: list[TextOutcome] = []
        temperature = 0.0 if greedy else cfg.speaker.temperature
        for _ in range(cfg.max_steps):
            tok = self.speaker.tokenizer
            prompts = [tok(self.prompt(SPEAKER_ID, o[SPEAKER_ID]), add_special_tokens=False)["input_ids"] for o in obs]
            with torch.no_grad():
                s = sample(
                    self.group.model,
                    prompts,
                    pad_id=self.speaker.pad_id,
                    eos_ids=self.speaker.eos_id,
                    max_new_tokens=cfg.speaker.max_new_tokens,
                    temperature=temperature,
                    constraints=[constraint] * len(prompts),
                    generator=self.speaker.generator,
                )
            completions = s.completions()
            texts = [self.speaker._decode(c, spelled) for c in completions]
            if cfg.message == "constant":
                texts = [COLOURS[0]] * len(texts)
            x = self._listener_input(np.stack([o[LISTENER_ID] for o in obs]))
            with torch.no_grad():
                logits, values = self.listener(x, goal)
                if greedy:
                    actions = logits.argmax(-1)
                else:
                    actions = torch.multinomial(logits.softmax(-1), 1, generator=self.generator).squeeze(-1)
                logp = torch.log_softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
            step_rewards = []
            for i, env in enumerate(envs):
                o, r, _, truncated, info = env.step({SPEAKER_ID: texts[i], LISTENER_ID: int(actions[i])})
                obs[i] = o
                step_rewards.append(r[LISTENER_ID])
                if record and cfg.message != "constant":
                    turns[i].append(
                        Turn(
                            SPEAKER_ID,
                            prompts[i],
                            completions[i],
                            s.logprobs[i, : len(completions[i])].clone(),
                            constraint,
                            reward=r[SPEAKER_ID],
                        )
                    )
                if truncated:
                    outcomes.append(info["outcome"])
            for k, v in zip(arrays, (x, goal, actions, logp, values, torch.tensor(step_rewards, dtype=torch.float32))):
                arrays[k].append(v)
        final_x = self._listener_input(np.stack([o[LISTENER_ID] for o in obs]))
        flat = [turn for episode in turns for turn in episode]
        batch = Batch({"shared": flat}, {"shared": [e for e in turns if e]}, outcomes)
        return {"batch": batch, "arrays": {k: torch.stack(v) for k, v in arrays.items()}, "final_obs": final_x,
                "turns": turns}  # fmt: skip

    # ------------------------------------------------------------------------------------------ learning
    def _advantages(
        self, arrays: dict[str, torch.Tensor], final_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and lambda-returns ``(T, copies)`` of the team's steps under the centralised critic."""
        lc = self.config.listener
        T, E = arrays["rewards"].shape
        with torch.no_grad():
            next_values = torch.cat([arrays["values"][1:], self.listener(final_obs, arrays["goal"][-1])[1][None]])
        truncated = torch.zeros(T, E, dtype=torch.bool)
        truncated[-1] = True  # the time limit: bootstrapped from the final observation's value, not a terminal
        return gae(
            arrays["rewards"], arrays["values"], next_values, torch.zeros_like(truncated), truncated,
            lc.gamma, lc.gae_lambda,
        )  # fmt: skip

    def _listener_update(
        self, arrays: dict[str, torch.Tensor], adv: torch.Tensor, returns: torch.Tensor
    ) -> dict[str, float]:
        lc = self.config.listener
        T, E = arrays["rewards"].shape
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        data = {
            "obs": arrays["obs"].reshape(T * E, -1),
            "goal": arrays["goal"].reshape(T * E, -1),
            "actions": arrays["actions"].reshape(-1),
            "logp": arrays["logp"].reshape(-1),
            "adv": adv.reshape(-1),
            "returns": returns.reshape(-1),
            "values": arrays["values"].reshape(-1),
        }
        n = T * E
        stats = []
        for _ in range(lc.epochs):
            perm = torch.randperm(n, generator=self.generator)
            for m in range(lc.minibatches):
                idx = perm[m * n // lc.minibatches : (m + 1) * n // lc.minibatches]
                logits, value = self.listener(data["obs"][idx], data["goal"][idx])
                loss, terms = categorical_ppo_loss(
                    logits, data["actions"][idx], data["logp"][idx], data["adv"][idx], value, data["values"][idx],
                    data["returns"][idx], torch.ones(len(idx)), clip=lc.clip, value_clip=0.0, huber_delta=10.0,
                    value_coef=lc.value_coef, entropy_coef=lc.entropy_coef,
                )  # fmt: skip
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.listener.parameters(), lc.max_grad_norm)
                self.optimizer.step()
                stats.append(terms)
        mean = torch.stack(stats).mean(0).tolist()
        return {f"listener/{k}": v for k, v in zip(("policy", "value", "entropy", "approx_kl", "clip_frac"), mean)}

    def update(self) -> dict[str, float]:
        """One update of both agents from one batch of episodes; returns metrics (``team/`` are the episodes')."""
        start = time.perf_counter()
        seed = int(np.random.SeedSequence([self.config.seed, self.updates_done]).generate_state(1)[0])
        played = self.play(seed)
        metrics = team_metrics(played["batch"].outcomes)
        adv, returns = self._advantages(played["arrays"], played["final_obs"])
        if played["batch"].turns["shared"]:
            for i, episode in enumerate(played["turns"]):
                for t, turn in enumerate(episode):
                    turn.reward = float(adv[t, i])  # the message of step t is heard in the observation after it
            metrics.update({f"speaker/{k}": v for k, v in self.speaker.update(played["batch"]).items()})
        metrics.update(self._listener_update(played["arrays"], adv, returns))
        self.updates_done += 1
        metrics["time/update_s"] = time.perf_counter() - start
        return metrics

    def train(self, updates: int) -> list[dict[str, float]]:
        """Run updates until ``updates`` have been done in total."""
        history = []
        while self.updates_done < updates:
            history.append(self.update())
        return history

    def evaluate(self, rounds: int, seed: int, greedy: bool = False) -> dict[str, float]:
        """The team's metrics over ``rounds * copies`` episodes seeded from ``seed`` (training generators untouched)."""
        saved = self.speaker.generator, self.generator
        self.speaker.generator = torch.Generator().manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed + 1)
        try:
            outcomes = [
                o
                for r in range(rounds)
                for o in self.play(seed * 1000 + r, greedy=greedy, record=False)["batch"].outcomes
            ]
        finally:
            self.speaker.generator, self.generator = saved
        return team_metrics(outcomes)


def team_metrics(outcomes: Sequence[TextOutcome]) -> dict[str, float]:
    """Mean team return (the listener's, which is the shared reward), completion rate and message accuracy."""
    return {
        "team/return": float(np.mean([o.scores[LISTENER_ID] for o in outcomes])),
        "team/completed": float(np.mean([o.completed for o in outcomes])),
        "team/message_accuracy": float(np.mean([o.extra["message_accuracy"] for o in outcomes])),
        "team/final_goal_distance": float(np.mean([o.extra["final_goal_distance"] for o in outcomes])),
    }
