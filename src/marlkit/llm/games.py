"""Play text games with text policies (language models, scripted agents, any mix) and collect their outcomes.

``game_texts`` plays random allowed answers and returns what was shown: the material of a game's vocabulary
(``marlkit.llm.tiny.word_tokenizer``).

``play(env, policies, episodes)`` steps a ``TextVecEnv`` until every copy has finished its share of ``episodes``.
Each step gathers the prompts of every agent that must act in every copy and asks each *policy* once for all of its
prompts, so a language model shared by several agents (self-play) answers them in one batched call.

**No bias toward short episodes.** Taking the first N episodes to finish across parallel copies would over-sample
short ones (they finish first). Instead each copy plays a fixed quota of consecutive episodes (``episodes`` split as
evenly as possible), and only those are returned. Copies that have met their quota are still stepped by the
``TextVecEnv`` (it steps all copies together) but answered with empty strings, at no model cost, and their extra
episodes are discarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from marlkit.envs.text.base import TextEnv, TextOutcome, TextVecEnv
from marlkit.llm.policy import TextPolicy


def play(
    env: TextVecEnv, policies: TextPolicy | Mapping[str, TextPolicy], episodes: int, max_steps: int = 100_000
) -> list[TextOutcome]:
    """Play ``episodes`` full episodes on ``env`` (reset first) and return their outcomes, copy by copy.

    ``policies`` is one policy for every agent, or a mapping agent id -> policy (the same object may serve several
    agents). ``max_steps`` bounds the number of ``env.step`` calls, as a guard against a game that never ends.
    """
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    agents = env.envs[0].agents
    if isinstance(policies, Mapping):
        missing = [a for a in agents if a not in policies]
        unknown = [a for a in policies if a not in agents]
        if missing or unknown:
            raise ValueError(
                f"policies must cover the agents {list(agents)} exactly; missing {missing}, unknown {unknown}"
            )
        by_agent: dict[str, Any] = dict(policies)
    else:
        by_agent = {a: policies for a in agents}
    for agent, policy in by_agent.items():
        if not isinstance(policy, TextPolicy):
            raise TypeError(f"the policy of {agent!r} has no act(observations) method: {type(policy).__name__}")
    quota = [episodes // env.num_envs + (i < episodes % env.num_envs) for i in range(env.num_envs)]
    results: list[list[TextOutcome]] = [[] for _ in range(env.num_envs)]
    env.reset()
    for _ in range(max_steps):
        if all(len(r) >= q for r, q in zip(results, quota)):
            return [o for r in results for o in r]
        asked = env.prompts()
        texts = [""] * len(asked)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for k, (copy, agent, _) in enumerate(asked):
            if len(results[copy]) < quota[copy]:
                policy = by_agent[agent]
                groups.setdefault(id(policy), (policy, []))[1].append(k)
        for policy, rows in groups.values():
            answers = policy.act([asked[k][2] for k in rows])
            if len(answers) != len(rows):
                raise ValueError(
                    f"{type(policy).__name__}.act returned {len(answers)} texts for {len(rows)} observations"
                )
            for k, text in zip(rows, answers):
                texts[k] = text
        _, ended = env.step(texts)
        for copy, outcome in enumerate(ended):
            if outcome is not None and len(results[copy]) < quota[copy]:
                results[copy].append(outcome)
    raise RuntimeError(f"{episodes} episodes did not finish within max_steps={max_steps} steps")


def game_texts(
    make_env: Callable[[], TextEnv], actions: Callable[[TextEnv, str], Sequence[str] | None], episodes: int, seed: int
) -> list[str]:
    """Observations and allowed answers seen in ``episodes`` episodes of uniformly random allowed answers (empty
    text where ``actions`` allows free text): the material of a game's vocabulary."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    vec = TextVecEnv(make_env, 1, seed=seed)
    vec.reset()
    finished = 0
    while finished < episodes:
        answers = []
        for i, agent, obs in vec.prompts():
            texts.append(obs)
            allowed = actions(vec.envs[i], agent)
            if allowed is not None:
                texts.extend(allowed)
            answers.append(str(rng.choice(list(allowed))) if allowed else "")
        _, ended = vec.step(answers)
        finished += sum(o is not None for o in ended)
    return texts
