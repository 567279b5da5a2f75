"""Policy-gradient training of language-model agents on the reward of a text game, token by token.

One update: play a batch of episodes of a text game (``TextVecEnv`` copies; every agent's turn is one batched
generation with ``marlkit.llm.tokens.sample``), give each turn a return, and improve the log-probability of the
tokens of turns that did better than a baseline. The pieces, in the order the code runs them:

**Policy.** A Hugging Face causal LM reads the agent's observation (``prompt(agent, observation)``, by default the
observation itself: every marlkit text game names the agent in it, so weights shared by several agents still know
whom they play; ``keep_lines`` keeps only the lines that change, e.g. a board and the legal moves) and writes its
answer. ``actions(env, agent)`` may restrict the answer to the legal moves: the tokens are then sampled from the
logits masked to those sequences (``AllowedSequences``), and that constrained distribution is the policy whose
log-probabilities are trained. An untrained model so plays a legal move, close to uniformly at random, rather than
text that never parses. ``None`` leaves the answer free (talk).

**Credit.** The rewards an agent receives after its turn, until its next turn, are that turn's reward. With
``credit="to_go"`` a turn's return is its discounted reward-to-go, ``G_k = r_k + gamma * G_{k+1}`` (REINFORCE's
causality: a turn is not credited with rewards that came before it); with ``credit="episode"`` every turn gets the
agent's undiscounted episode return. The return of a turn is given to every token generated in it: the turn is one
action whose log-probability is the sum of its tokens' log-probabilities.

**Baseline.** ``baseline="batch"``: the mean return of the agent's turns in this batch (the prompts of a text game
all differ, so there is no per-prompt group as in GRPO); ``"running"``: an exponential moving average of it over
past batches (the value before this batch, so it does not depend on the samples it is subtracted from);
``"none"``. Advantages ``A = G - b`` are optionally divided by their standard deviation over the batch.

**Objective.** ``algorithm="reinforce"``: one gradient step per minibatch on ``-A * log pi(token)`` (Williams 1992).
``algorithm="ppo"``: several epochs of minibatch steps on the clipped surrogate
``-min(r A, clip(r, 1-eps, 1+eps) A)`` with the per-token ratio ``r = pi(token) / pi_old(token)`` (Schulman et al.
2017, arXiv:1707.06347; per-token ratios as in RLHF's PPO). Per-token terms are summed over the tokens of a turn
and averaged over the turns of the minibatch.

**KL to a reference.** With ``kl_coef > 0`` a frozen copy of the initial model is the reference ``pi_ref``, and the
per-token KL divergence ``KL(pi || pi_ref)`` on the sampled tokens is penalised with one of the estimators of
Schulman, "Approximating KL Divergence" (2020, http://joschu.net/blog/kl-approx.html), ``log_r = log pi_ref -
log pi``: ``k1 = -log_r`` (unbiased, can be negative) or ``k3 = (exp(log_r) - 1) - log_r`` (unbiased, never
negative). Where it enters matters: ``kl_in="reward"`` subtracts ``kl_coef * sum of k1`` over a turn's tokens from
that turn's reward (the RLHF recipe: Ziegler et al. 2019, arXiv:1909.08593; Ouyang et al. 2022), so the score
function carries its gradient; ``kl_in="loss"`` adds ``kl_coef * k3`` per token to the loss (GRPO: Shao et al.
2024, arXiv:2402.03300). ``k1`` in the loss is refused: its expected gradient is ``E_pi[grad log pi] = 0``.

**Multi-agent.** Agents listed in ``fixed`` are played by fixed text policies (scripted partners); every other
agent learns. Learners share one model (``shared_weights=True``: one optimizer, every agent's turns in its batch,
per-agent baselines) or each gets its own copy of the initial model and optimizer.

**Episodes per update.** Each copy plays a fixed quota of whole episodes per batch (as ``marlkit.llm.play`` does),
so short episodes are not over-sampled; a copy that met its quota is answered with empty text at no model cost and
its extra episodes are dropped. Batch ``k`` seeds its games with ``(seed, k)``: a run is reproducible and a resumed
run continues with the same games.

**Determinism and checkpoints.** Sampling and minibatch order use the trainer's own ``torch.Generator`` (seeded with
``seed``). Models stay in eval mode (dropout off): with dropout the sampled and re-scored log-probabilities would
differ and the PPO ratio would be noise. ``save``/``load`` write every model, optimizer, reference, baseline and
generator state with the house's atomic ``torch.save`` and read them with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from marlkit.core import checkpoint
from marlkit.core.errors import did_you_mean
from marlkit.envs.text.base import TextEnv, TextOutcome, TextVecEnv
from marlkit.llm.policy import TextPolicy
from marlkit.llm.tokens import AllowedSequences, Constraint, left_pad, right_pad, sample, score_tokens
from marlkit.llm.trunk import Trunk, TrunkCapture, TrunkSkip, allowed_tokens, frozen_trunk, padded_hidden, turn_hidden


# ---------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TokenRLSettings:
    """How ``TokenRL`` plays its batches and learns from them: every knob but the copies and the seed, which a run
    takes from its env and experiment sections (``marlkit.llm.text_learner``); validated at construction."""

    algorithm: Literal["ppo", "reinforce"] = "ppo"
    """``"ppo"``: clipped surrogate, several epochs; ``"reinforce"``: one pass of ``-A log pi``."""
    episodes_per_update: int = 64
    """Whole episodes played per batch (split evenly over the copies)."""
    lr: float = 1e-3
    """Adam learning rate."""
    epochs: int = 4
    """Passes over each batch (PPO); must be 1 for REINFORCE."""
    minibatch_turns: int = 256
    """Turns per gradient step."""
    clip: float = 0.2
    """PPO's ratio clip epsilon."""
    credit: Literal["to_go", "episode"] = "to_go"
    """A turn's return: discounted reward-to-go from the turn, or the agent's whole episode return."""
    gamma: float = 1.0
    """Discount per turn of the same agent (``credit="to_go"``)."""
    baseline: Literal["batch", "running", "none"] = "batch"
    """What is subtracted from returns, per agent: the batch mean, a running mean, or nothing."""
    baseline_momentum: float = 0.9
    """Weight of the old value in the running-mean baseline."""
    normalize_advantages: bool = True
    """Divide advantages by their standard deviation over the batch (per group of shared weights)."""
    kl_coef: float = 0.0
    """Weight of the KL penalty to the frozen initial model (0: no reference is kept)."""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """Schulman's estimator of the per-token KL: ``k1 = log pi - log pi_ref`` or ``k3``."""
    kl_in: Literal["reward", "loss"] = "reward"
    """Where the KL penalty enters: subtracted from each turn's reward, or added to the loss per token."""
    entropy_coef: float = 0.0
    """Weight of the bonus for the per-token entropy of the (constrained) policy."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip per step (0 disables)."""
    max_new_tokens: int = 8
    """Longest answer in tokens (a constrained answer ends with its end-of-text token before that)."""
    temperature: float = 1.0
    """Sampling temperature while training (the log-probabilities are those of the sampling distribution)."""
    shared_weights: bool = True
    """Learning agents share one model (True) or each trains its own copy of the initial model (False)."""

    def __post_init__(self) -> None:
        choices = {
            "algorithm": ("ppo", "reinforce"),
            "credit": ("to_go", "episode"),
            "baseline": ("batch", "running", "none"),
            "kl_estimator": ("k1", "k3"),
            "kl_in": ("reward", "loss"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}{did_you_mean(str(value), allowed)}")
        for name in ("episodes_per_update", "epochs", "minibatch_turns", "max_new_tokens"):
            _positive_int(self, name)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 < self.clip < 1:
            raise ValueError(f"clip must be in (0, 1), got {self.clip!r}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not 0 <= self.baseline_momentum < 1:
            raise ValueError(f"baseline_momentum must be in [0, 1), got {self.baseline_momentum!r}")
        for name in ("kl_coef", "entropy_coef", "max_grad_norm"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.temperature > 0:
            raise ValueError(
                f"temperature must be > 0 while training (sampling is the policy), got "
                f"{self.temperature!r}; greedy play is TokenRL.evaluate(..., greedy=True)"
            )
        if self.algorithm == "reinforce" and self.epochs != 1:
            raise ValueError(
                f"algorithm='reinforce' takes one pass over each batch (epochs=1), got "
                f"epochs={self.epochs}; use algorithm='ppo' to reuse a batch"
            )
        if self.kl_estimator == "k1" and self.kl_in == "loss" and self.kl_coef > 0:
            raise ValueError(
                "kl_estimator='k1' with kl_in='loss' has zero expected gradient (E_pi[grad log pi] = "
                "0); use kl_in='reward' (the RLHF recipe) or kl_estimator='k3' (GRPO)"
            )


def _positive_int(config: Any, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TokenRLConfig(TokenRLSettings):
    """Every knob of ``TokenRL``; validated at construction."""

    num_envs: int = 32
    """Copies of the game played at once (one generation answers all of them)."""
    seed: int = 0
    """Seeds sampling, minibatch order and the games of every batch."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int(self, "num_envs")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TokenRLConfig:
        """A config from a mapping; an unknown key is an error naming the nearest field."""
        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                raise ValueError(f"TokenRLConfig has no field {key!r}{did_you_mean(key, names)}")
        return cls(**values)


# ------------------------------------------------------------------------------------------ the loss pieces
def turn_returns(rewards: Sequence[float], gamma: float, credit: str) -> list[float]:
    """Return of each of one agent's turns in an episode, from the rewards that followed each turn."""
    if credit == "episode":
        return [float(sum(rewards))] * len(rewards)
    out, g = [0.0] * len(rewards), 0.0
    for k in range(len(rewards) - 1, -1, -1):
        g = rewards[k] + gamma * g
        out[k] = g
    return out


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi`` (Schulman 2020): k1 or k3."""
    log_r = ref_logp - logp
    if estimator == "k1":
        return -log_r
    if estimator == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown KL estimator {estimator!r}; allowed: 'k1', 'k3'")


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's per-token loss ``-min(r A, clip(r, 1-clip, 1+clip) A)`` with ``r = exp(logp - old_logp)``."""
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


class RunningMean:
    """Exponential moving average, starting at the first value it sees."""

    def __init__(self, momentum: float, value: float | None = None) -> None:
        self.momentum, self.value = momentum, value

    def update(self, x: float) -> None:
        self.value = x if self.value is None else self.momentum * self.value + (1 - self.momentum) * x


def advantages_of(
    returns: torch.Tensor, agents: Sequence[str], baseline: str, running: Mapping[str, RunningMean], normalize: bool
) -> torch.Tensor:
    """``returns - baseline`` per agent (batch mean, running mean before this batch, or 0), optionally / std."""
    adv = returns.clone()
    for agent in sorted(set(agents)):
        rows = torch.tensor([a == agent for a in agents])
        if baseline == "batch":
            adv[rows] -= returns[rows].mean()
        elif baseline == "running":
            value = running[agent].value
            adv[rows] -= 0.0 if value is None else value
    if normalize and len(adv) > 1:
        adv = adv / (adv.std() + 1e-8)
    return adv


# ----------------------------------------------------------------------------------------------- rollouts
@dataclass
class Turn:
    """One generation of one agent: its tokens, their log-probabilities, and the reward that followed."""

    agent: str
    prompt: list[int]
    completion: list[int]
    logprobs: torch.Tensor  # [len(completion)] under the behaviour policy
    constraint: Constraint | None
    reward: float = 0.0  # rewards to this agent after this turn, until its next turn
    kl_penalty: float = 0.0  # kl_coef * sum of k1 over the turn's tokens (kl_in="reward")
    ret: float = 0.0  # the turn's return, set by ``update``
    hidden: torch.Tensor | None = None  # states entering the first trainable block (``marlkit.llm.trunk``)


@dataclass
class Batch:
    """The turns of one batch, per group of shared weights, with the outcomes of the episodes they came from."""

    turns: dict[str, list[Turn]]
    episodes: dict[str, list[list[Turn]]]  # per group: each agent-episode's turns, in order
    outcomes: list[TextOutcome]


@dataclass
class _Group:
    model: Any
    optimizer: torch.optim.Optimizer
    reference: Any | None
    agents: list[str] = field(default_factory=list)
    trunk: Trunk | None = None  # a frozen trunk the update need not re-run (``marlkit.llm.trunk``)


Actions = Callable[[TextEnv, str], Sequence[str] | None]
Prompt = Callable[[str, str], str]


def observation_prompt(agent: str, observation: str) -> str:
    """The default prompt: the observation itself (marlkit text games name the agent in it)."""
    return observation


def keep_lines(*starts: str) -> Prompt:
    """A prompt made of the observation's lines that begin with one of ``starts`` (in their order), e.g. a game's
    board and its list of legal moves without the instructions that are the same in every observation (for
    tic-tac-toe, 39 tokens of 127 with ``word_tokenizer``): each forward pass costs a third, and what changes sits at
    fixed positions from the start of the prompt."""
    if not starts:
        raise ValueError("keep_lines needs at least one line prefix")

    def prompt(agent: str, observation: str) -> str:
        kept = [line for line in observation.split("\n") if line.startswith(starts)]
        if not kept:
            raise ValueError(f"no line of the observation begins with any of {list(starts)}: {observation!r}")
        return "\n".join(kept)

    return prompt


class TokenRL:
    """Trains language-model agents of a text game by policy gradients on their tokens (see the module docstring).

    ``make_env`` builds one copy of the game; ``model``/``tokenizer`` the initial policy; ``actions(env, agent)``
    the allowed answers (None: free text); ``fixed`` maps agents to fixed ``TextPolicy`` partners.
    """

    def __init__(
        self,
        make_env: Callable[[], TextEnv],
        model: Any,
        tokenizer: Any,
        config: TokenRLConfig,
        *,
        actions: Actions | None = None,
        prompt: Prompt = observation_prompt,
        fixed: Mapping[str, TextPolicy] | None = None,
    ) -> None:
        if not isinstance(config, TokenRLConfig):
            raise TypeError(f"config must be a TokenRLConfig, got {type(config).__name__}")
        self.config, self.make_env, self.tokenizer = config, make_env, tokenizer
        self.actions, self.prompt = actions, prompt
        probe = make_env()
        self.agents: tuple[str, ...] = tuple(probe.agents)
        self.fixed = dict(fixed or {})
        unknown = [a for a in self.fixed if a not in self.agents]
        if unknown:
            raise ValueError(f"fixed names agents {unknown} that the game does not have (agents: {list(self.agents)})")
        for agent, policy in self.fixed.items():
            if not isinstance(policy, TextPolicy):
                raise TypeError(f"the fixed policy of {agent!r} has no act(observations) method")
        self.learners = [a for a in self.agents if a not in self.fixed]
        if not self.learners:
            raise ValueError(f"every agent {list(self.agents)} is fixed: nothing to train")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs an end-of-text token (eos_token) to end answers")
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        names = ["shared"] if config.shared_weights else self.learners
        self.groups: dict[str, _Group] = {}
        for name in names:
            m = model if name == names[0] else copy.deepcopy(model)
            m.eval()  # no dropout: sampled and re-scored log-probs must agree
            ref = None
            if config.kl_coef > 0:
                ref = copy.deepcopy(m).eval()
                ref.requires_grad_(False)
            trainable = [p for p in m.parameters() if p.requires_grad]  # LoRA: the adapters alone
            self.groups[name] = _Group(m, torch.optim.Adam(trainable, lr=config.lr), ref, trunk=frozen_trunk(m))
        self.group_of = {a: ("shared" if config.shared_weights else a) for a in self.learners}
        for agent, name in self.group_of.items():
            self.groups[name].agents.append(agent)
        self.running = {a: RunningMean(config.baseline_momentum) for a in self.learners}
        self.generator = torch.Generator().manual_seed(config.seed)
        self.updates_done = 0

    # ------------------------------------------------------------------------------------------- playing
    def _constraint(self, env: TextEnv, agent: str) -> tuple[Constraint | None, dict[tuple[int, ...], str]]:
        """The constraint of ``agent``'s answer, and the allowed answer each allowed token sequence spells."""
        allowed = self.actions(env, agent) if self.actions is not None else None
        if allowed is None:
            return None, {}
        seqs = [self.tokenizer(a, add_special_tokens=False)["input_ids"] for a in allowed]
        if not seqs or any(len(s) == 0 for s in seqs):
            raise ValueError(f"actions(env, {agent!r}) must return non-empty strings, got {list(allowed)!r}")
        return AllowedSequences(seqs, self.eos_id), {tuple(s): a for s, a in zip(seqs, allowed)}

    def _decode(self, tokens: Sequence[int], spelled: Mapping[tuple[int, ...], str] | None = None) -> str:
        """The answer text: the allowed answer the tokens spell (a tokenizer's decoding may space it differently,
        e.g. a word tokenizer's ``"[ 4 ]"`` for ``"[4]"``), else the decoded tokens."""
        body = tuple(t for t in tokens if t != self.eos_id)
        if spelled and body in spelled:
            return spelled[body]
        return self.tokenizer.decode(list(body), skip_special_tokens=True).strip()

    def play(
        self,
        episodes: int,
        seed: int,
        *,
        temperature: float | None = None,
        greedy: bool = False,
        record: bool = True,
        make_env: Callable[[], TextEnv] | None = None,
        num_envs: int | None = None,
        fixed: Mapping[str, TextPolicy] | None = None,
    ) -> Batch:
        """Play ``episodes`` whole episodes (games seeded from ``seed``); with ``record``, keep every learner turn.
        ``make_env`` and ``num_envs`` play another game of the same agents, or another number of copies, than the
        trainer was built with; ``fixed`` adds fixed policies for this call (e.g. a past snapshot in one seat):
        their agents' turns are not recorded."""
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
        temperature = 0.0 if greedy else (self.config.temperature if temperature is None else temperature)
        num_envs = min(num_envs or self.config.num_envs, episodes)
        vec = TextVecEnv(make_env or self.make_env, num_envs, seed=seed)
        quota = [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]
        done = [0] * num_envs
        current: list[dict[str, list[Turn]]] = [{a: [] for a in self.learners} for _ in range(num_envs)]
        batch = Batch({g: [] for g in self.groups}, {g: [] for g in self.groups}, [])
        vec.reset()
        for _ in range(100_000):
            if all(d >= q for d, q in zip(done, quota)):
                return batch
            asked = vec.prompts()
            texts = [""] * len(asked)
            live = [k for k, (i, _, _) in enumerate(asked) if done[i] < quota[i]]
            fixed_now = {**self.fixed, **(fixed or {})}
            for agent, policy in fixed_now.items():
                rows = [k for k in live if asked[k][1] == agent]
                if rows:
                    for k, text in zip(rows, policy.act([asked[k][2] for k in rows])):
                        texts[k] = text
            new_turns: list[tuple[int, Turn]] = []
            for group in self.groups.values():
                rows = [k for k in live if asked[k][1] in group.agents and asked[k][1] not in fixed_now]
                if not rows:
                    continue
                prompts = [
                    self.tokenizer(self.prompt(asked[k][1], asked[k][2]), add_special_tokens=False)["input_ids"]
                    for k in rows
                ]
                built = [self._constraint(vec.envs[asked[k][0]], asked[k][1]) for k in rows]
                constraints = [c for c, _ in built]
                capture = TrunkCapture(group.trunk) if record and group.trunk is not None else None
                with capture or contextlib.nullcontext():
                    s = sample(
                        group.model,
                        prompts,
                        pad_id=self.pad_id,
                        eos_ids=self.eos_id,
                        max_new_tokens=self.config.max_new_tokens,
                        temperature=temperature,
                        constraints=constraints,
                        generator=self.generator,
                    )
                hidden = capture.hidden() if capture is not None else None
                for j, (k, completion) in enumerate(zip(rows, s.completions())):
                    texts[k] = self._decode(completion, built[j][1])
                    if record:
                        new_turns.append(
                            (
                                asked[k][0],
                                Turn(
                                    asked[k][1],
                                    prompts[j],
                                    completion,
                                    s.logprobs[j, : len(completion)].clone(),
                                    constraints[j],
                                    hidden=None
                                    if hidden is None
                                    else turn_hidden(
                                        hidden, j, len(prompts[j]), len(completion), s.prompt_ids.shape[1]
                                    ),
                                ),
                            )
                        )
            for copy_index, turn in new_turns:
                current[copy_index][turn.agent].append(turn)
            rewards, ended = vec.step(texts)
            for i, (r, outcome) in enumerate(zip(rewards, ended)):
                if done[i] >= quota[i]:
                    continue
                for agent in self.learners:
                    if current[i][agent]:
                        current[i][agent][-1].reward += r[agent]
                if outcome is not None:
                    done[i] += 1
                    batch.outcomes.append(outcome)
                    for agent, turns in current[i].items():
                        if turns:
                            batch.turns[self.group_of[agent]].extend(turns)
                            batch.episodes[self.group_of[agent]].append(turns)
                    current[i] = {a: [] for a in self.learners}
        raise RuntimeError(f"{episodes} episodes did not finish within 100000 steps")

    def evaluate(
        self,
        episodes: int,
        seed: int,
        *,
        greedy: bool = False,
        make_env: Callable[[], TextEnv] | None = None,
        num_envs: int | None = None,
    ) -> list[TextOutcome]:
        """Outcomes of ``episodes`` episodes played with the current policy (no learning, the trainer's generator
        untouched: evaluation draws from its own, seeded with ``seed``); ``make_env``/``num_envs`` as in ``play``."""
        saved, self.generator = self.generator, torch.Generator().manual_seed(seed)
        try:
            return self.play(episodes, seed, greedy=greedy, record=False, make_env=make_env, num_envs=num_envs).outcomes
        finally:
            self.generator = saved

    # ------------------------------------------------------------------------------------------ learning
    def _tensors(self, turns: Sequence[Turn]) -> dict[str, Any]:
        p_ids, p_mask = left_pad([t.prompt for t in turns], self.pad_id)
        c_ids, c_mask = right_pad([t.completion for t in turns], self.pad_id)
        old = torch.zeros(c_ids.shape)
        for i, t in enumerate(turns):
            old[i, : len(t.completion)] = t.logprobs
        return {
            "p_ids": p_ids,
            "p_mask": p_mask,
            "c_ids": c_ids,
            "c_mask": c_mask,
            "old": old,
            "constraints": [t.constraint for t in turns],
            "hidden": [t.hidden for t in turns],
            "p_len": [len(t.prompt) for t in turns],
        }

    @staticmethod
    def _rows(data: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
        """The rows ``index`` of padded tensors, with columns that are padding in every kept row cut away."""
        p_mask, c_mask = data["p_mask"][index], data["c_mask"][index]
        first = int(p_mask.any(0).nonzero()[0])
        width = int(c_mask.any(0).nonzero()[-1]) + 1
        idx = index.tolist()
        return {
            "p_ids": data["p_ids"][index, first:],
            "p_mask": p_mask[:, first:],
            "c_ids": data["c_ids"][index, :width],
            "c_mask": c_mask[:, :width],
            "old": data["old"][index, :width],
            "constraints": [data["constraints"][i] for i in idx],
            "hidden": [data["hidden"][i] for i in idx],
            "p_len": [data["p_len"][i] for i in idx],
        }

    def update(self, batch: Batch) -> dict[str, float]:
        """One policy-gradient update of every group from ``batch``; returns namespaced metrics."""
        cfg = self.config
        metrics: dict[str, float] = {}
        for name, group in self.groups.items():
            turns = batch.turns[name]
            if not turns:
                continue
            data = self._tensors(turns)
            if group.reference is not None:
                data["ref"] = self._reference_logprobs(group.reference, data)
                if cfg.kl_in == "reward":  # k1 per token, summed over the turn, taken from the turn's reward
                    k1 = kl_estimate(data["old"], data["ref"], "k1") * data["c_mask"]
                    for t, penalty in zip(turns, k1.sum(1).tolist()):
                        t.kl_penalty = cfg.kl_coef * penalty
            for episode in batch.episodes[name]:
                rewards = [t.reward - t.kl_penalty for t in episode]
                for t, g in zip(episode, turn_returns(rewards, cfg.gamma, cfg.credit)):
                    t.ret = g
            returns = torch.tensor([t.ret for t in turns])
            agents = [t.agent for t in turns]
            adv = advantages_of(returns, agents, cfg.baseline, self.running, cfg.normalize_advantages)
            for agent in set(agents):
                self.running[agent].update(float(returns[torch.tensor([a == agent for a in agents])].mean()))
            data["adv"] = adv
            metrics.update({f"{name}/{k}": v for k, v in self._optimize(group, data).items()})
            metrics[f"{name}/return_mean"] = float(returns.mean())
        self.updates_done += 1
        return metrics

    def _reference_logprobs(self, reference: Any, data: dict[str, Any]) -> torch.Tensor:
        out = torch.zeros(data["c_ids"].shape)
        n = len(data["constraints"])
        with torch.no_grad():
            for start in range(0, n, self.config.minibatch_turns):
                idx = torch.arange(start, min(n, start + self.config.minibatch_turns))
                rows = self._rows(data, idx)
                lp = score_tokens(
                    reference,
                    rows["p_ids"],
                    rows["p_mask"],
                    rows["c_ids"],
                    rows["c_mask"],
                    constraints=rows["constraints"],
                    temperature=self.config.temperature,
                ).logprobs
                out[idx, : lp.shape[1]] = lp
        return out

    @staticmethod
    def _scorer(group: _Group, rows: dict[str, Any]) -> Any:
        """The model, or when every turn kept its frozen-trunk states, the trainable top of it run on them."""
        if group.trunk is None or any(h is None for h in rows["hidden"]):
            return group.model
        hidden = padded_hidden(rows["hidden"], rows["p_len"], rows["p_ids"].shape[1], rows["c_ids"].shape[1])
        lengths = rows["c_mask"].sum(1).tolist()
        completions = [ids[: int(n)] for ids, n in zip(rows["c_ids"].tolist(), lengths)]
        return TrunkSkip(group.model, group.trunk, hidden, allowed_tokens(rows["constraints"], completions))

    def _optimize(self, group: _Group, data: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        n = len(data["constraints"])
        sums = {"loss": 0.0, "policy": 0.0, "approx_kl": 0.0, "clip_frac": 0.0, "entropy": 0.0, "kl_ref": 0.0}
        steps = tokens_seen = 0
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch_turns):
                idx = order[start : start + cfg.minibatch_turns]
                rows = self._rows(data, idx)
                mask = rows["c_mask"].float()
                adv = data["adv"][idx][:, None]
                logp, entropy = score_tokens(
                    self._scorer(group, rows),
                    rows["p_ids"],
                    rows["p_mask"],
                    rows["c_ids"],
                    rows["c_mask"],
                    constraints=rows["constraints"],
                    temperature=cfg.temperature,
                )
                if cfg.algorithm == "ppo":
                    per_token = clipped_surrogate(logp, rows["old"], adv, cfg.clip)
                else:
                    per_token = -adv * logp
                policy_loss = per_token
                kl_ref = torch.zeros_like(logp)
                if "ref" in data:
                    kl_ref = kl_estimate(logp, data["ref"][idx, : logp.shape[1]], cfg.kl_estimator)
                    if cfg.kl_in == "loss":
                        per_token = per_token + cfg.kl_coef * kl_ref
                if cfg.entropy_coef:
                    per_token = per_token - cfg.entropy_coef * entropy
                loss = (per_token * mask).sum() / len(idx)  # sum over a turn's tokens, mean over turns
                group.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(group.model.parameters(), cfg.max_grad_norm)
                group.optimizer.step()
                with torch.no_grad():
                    log_ratio = (logp - rows["old"]) * mask
                    count = float(mask.sum())
                    sums["loss"] += float(loss)
                    sums["policy"] += float((policy_loss * mask).sum() / len(idx))
                    sums["approx_kl"] += float(((torch.exp(log_ratio) - 1 - log_ratio) * mask).sum())
                    sums["clip_frac"] += float((((log_ratio.exp() - 1).abs() > cfg.clip).float() * mask).sum())
                    sums["entropy"] += float((entropy * mask).sum())
                    sums["kl_ref"] += float((kl_ref * mask).sum())
                steps += 1
                tokens_seen += int(count)
        per_step = ("loss", "policy")
        return {f"losses/{k}": v / (steps if k in per_step else max(tokens_seen, 1)) for k, v in sums.items()}

    def train(
        self, updates: int, callback: Callable[[int, dict[str, float], Batch], None] | None = None
    ) -> list[dict[str, float]]:
        """Run updates until ``updates`` have been done in total (a resumed trainer continues where it stopped)."""
        history = []
        while self.updates_done < updates:
            start = time.perf_counter()
            seed = int(np.random.SeedSequence([self.config.seed, self.updates_done]).generate_state(1)[0])
            batch = self.play(self.config.episodes_per_update, seed)
            metrics = self.update(batch)
            metrics["charts/episodic_return"] = float(
                np.mean([np.mean(list(o.scores[a] for a in self.learners)) for o in batch.outcomes])
            )
            metrics["charts/turns"] = float(sum(len(t) for t in batch.turns.values()))
            metrics["time/update_s"] = time.perf_counter() - start
            history.append(metrics)
            if callback is not None:
                callback(self.updates_done, metrics, batch)
        return history

    # --------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain data (tensors, numbers, strings): loads with ``torch.load(weights_only=True)``."""
        return {
            "format": checkpoint.FORMAT,
            "kind": "token_rl",
            "config": asdict(self.config),
            "updates_done": self.updates_done,
            "groups": {
                name: {
                    "model": g.model.state_dict(),
                    "optimizer": g.optimizer.state_dict(),
                    "reference": None if g.reference is None else g.reference.state_dict(),
                }
                for name, g in self.groups.items()
            },
            "running": {a: r.value for a, r in self.running.items()},
            "generator": self.generator.get_state(),
            "rng": checkpoint.global_rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("kind") != "token_rl":
            raise ValueError(f"not a TokenRL checkpoint (kind {state.get('kind')!r})")
        if set(state["groups"]) != set(self.groups):
            raise ValueError(
                f"the checkpoint trains groups {sorted(state['groups'])} but this trainer has "
                f"{sorted(self.groups)} (shared_weights differs?)"
            )
        if state["config"] != asdict(self.config):
            diff = sorted(k for k in state["config"] if state["config"][k] != asdict(self.config).get(k))
            raise ValueError(f"the checkpoint was trained with another config (fields differ: {diff})")
        for name, g in self.groups.items():
            s = state["groups"][name]
            g.model.load_state_dict(s["model"])
            g.optimizer.load_state_dict(s["optimizer"])
            if g.reference is not None:
                g.reference.load_state_dict(s["reference"])
        for agent, value in state["running"].items():
            self.running[agent].value = value
        self.generator.set_state(state["generator"])
        checkpoint.set_global_rng_state(state["rng"])
        self.updates_done = int(state["updates_done"])

    def save(self, path: str | Path) -> Path:
        """Write the whole trainer state atomically (temporary file, fsync, rename)."""
        return checkpoint.save_atomic(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Restore a state written by ``save`` (read with ``weights_only=True``: nothing is unpickled)."""
        self.load_state_dict(checkpoint.load(path))


__all__ = [
    "Actions",
    "Batch",
    "RunningMean",
    "TokenRL",
    "TokenRLConfig",
    "TokenRLSettings",
    "Turn",
    "advantages_of",
    "clipped_surrogate",
    "kl_estimate",
    "keep_lines",
    "observation_prompt",
    "turn_returns",
]
