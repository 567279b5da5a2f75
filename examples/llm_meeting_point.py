"""Two language-model agents play the meeting-point game; print completion rate and communication efficiency.

Each agent holds half of a town map; one landmark is on both halves and both must name its cell (see
``marlkit/envs/text/meeting_point.py``). The agents talk freely for two turns, then answer ``"meet at <cell>"``.

    python examples/llm_meeting_point.py                      # a tiny random model built in memory (no download)
    python examples/llm_meeting_point.py --model DIR          # a local Hugging Face model folder, e.g. SmolLM2
    python examples/llm_meeting_point.py --base-url http://127.0.0.1:8000/v1 --model-name NAME   # an endpoint

With a local model the answer is **constrained**: the agent scores ``"meet at <cell>"`` for each landmark cell on
its own half and picks the likeliest (the meeting point is always on its half, so no guess is wasted off it, and no
answer is ever invalid). An endpoint cannot be constrained, so its answers are read leniently by the game. The tiny
random model talks noise, so its successes are luck, not communication (its constrained choices act like a fixed
preference among cells, a convention that both agents share); a model that reads its partner's message can do
better.

Printed: completion rate (both named the meeting point), talk messages and tokens (messages and answers) spent per
successful episode (the price of a success in communication, ``marlkit.metrics.communication_efficiency``), and
invalid answers per episode.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from marlkit.envs.text import TextOutcome, TextVecEnv, make_text
from marlkit.envs.text.meeting_point import CELL_HINT
from marlkit.llm.games import play
from marlkit.metrics import communication_efficiency, outcome_arrays, task_completion_rate

SYSTEM_PROMPT = (
    "You are playing a cooperative game with a partner. Read the instructions and answer briefly: "
    "one short message, or the answer in the requested format."
)
_LANDMARK = re.compile(r"\b(\w+) at ([A-E][1-5])\b")


def own_cells(observation: str) -> list[str]:
    """The cells of the landmarks on this agent's half, read from its observation ("Your half shows: ...")."""
    line = next(ln for ln in observation.splitlines() if ln.startswith("Your half shows:"))
    return [cell for _, cell in _LANDMARK.findall(line)]


def is_move(observation: str) -> bool:
    """True when the observation asks for the answer rather than a message (its last line says how to answer)."""
    return CELL_HINT in observation.rstrip().splitlines()[-1]


class MeetingPointAgent:
    """Talks with ``talker`` (free text) and answers with ``chooser`` (constrained to its own cells) when given."""

    def __init__(self, talker: Any, chooser: Any = None) -> None:
        self.talker, self.chooser = talker, chooser

    def act(self, observations: Sequence[str]) -> list[str]:
        texts = [""] * len(observations)
        moves = [i for i, o in enumerate(observations) if is_move(o)]
        talks = [i for i, o in enumerate(observations) if not is_move(o)]
        if talks:
            for i, text in zip(talks, self.talker.act([observations[i] for i in talks])):
                texts[i] = text
        if moves:
            chooser = self.chooser or self.talker
            for i, text in zip(moves, chooser.act([observations[i] for i in moves])):
                texts[i] = text
        return texts


def build_agent(
    model: str | None = None,
    base_url: str | None = None,
    model_name: str | None = None,
    seed: int = 0,
    max_new_tokens: int = 32,
) -> tuple[Any, Any]:
    """``(agent, count_tokens)``: the policy both players share and the token counter for the game's accounting."""
    if base_url:
        from marlkit.llm.openai_compat import OpenAIChatPolicy

        if not model_name:
            raise SystemExit("--base-url needs --model-name (the name the server knows the model by)")
        talker = OpenAIChatPolicy(
            base_url, model_name, system_prompt=SYSTEM_PROMPT, max_tokens=max_new_tokens, temperature=0.7, seed=seed
        )
        return MeetingPointAgent(talker), None  # the game counts words
    from marlkit.llm.hf import HFPolicy

    if model:
        talker = HFPolicy.from_pretrained(
            model, system_prompt=SYSTEM_PROMPT, max_new_tokens=max_new_tokens, temperature=0.7, seed=seed
        )
    else:
        from marlkit.llm.tiny import tiny_causal_lm

        net, tokenizer = tiny_causal_lm(seed=seed)
        talker = HFPolicy(net, tokenizer, system_prompt=SYSTEM_PROMPT, max_new_tokens=max_new_tokens, seed=seed)
    chooser = HFPolicy(
        talker.model,
        talker.tokenizer,
        system_prompt=SYSTEM_PROMPT,
        temperature=0,
        actions=lambda obs: [f"meet at {cell}" for cell in own_cells(obs)],
    )
    tokenizer = talker.tokenizer
    return MeetingPointAgent(talker, chooser), lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def summarize(outcomes: list[TextOutcome]) -> dict[str, float]:
    """Completion rate; messages and tokens spent over all episodes per success (``marlkit.metrics``: failures
    count against it; infinite when nothing succeeded); invalid answers per episode."""
    completed, messages, tokens = outcome_arrays(outcomes)
    cost = communication_efficiency(completed, messages, tokens)
    return {
        "episodes": len(outcomes),
        "completion_rate": task_completion_rate(completed),
        "messages_per_success": cost.messages_per_success,
        "tokens_per_success": cost.tokens_per_success,
        "invalid_per_episode": sum(sum(o.invalid.values()) for o in outcomes) / len(outcomes),
    }


def run(
    model: str | None = None,
    base_url: str | None = None,
    model_name: str | None = None,
    episodes: int = 8,
    num_envs: int = 4,
    seed: int = 0,
    max_new_tokens: int = 32,
) -> dict[str, float]:
    """Play ``episodes`` games (``num_envs`` at a time) and return the metrics (also what ``main`` prints)."""
    agent, count_tokens = build_agent(model, base_url, model_name, seed, max_new_tokens)
    extra = {"count_tokens": count_tokens} if count_tokens else {}
    env = TextVecEnv(lambda: make_text("meeting-point-v0", **extra), num_envs=num_envs, seed=seed)
    start = time.perf_counter()
    outcomes = play(env, agent, episodes)
    return {**summarize(outcomes), "seconds": round(time.perf_counter() - start, 2)}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="DIR", help="a local Hugging Face model folder (default: tiny random)")
    parser.add_argument("--base-url", help="an OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model-name", help="the model's name on that server")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--num-envs", type=int, default=4, help="games played at once (one batched call per step)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="longest message, in tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    metrics = run(
        args.model, args.base_url, args.model_name, args.episodes, args.num_envs, args.seed, args.max_new_tokens
    )
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
