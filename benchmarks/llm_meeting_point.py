"""Communication that gets cheaper: token RL with a cost per talk token on the cooperative meeting-point game.

    python benchmarks/llm_meeting_point.py --json benchmarks/results/llm_meeting_point.json

**Game** (``meeting-point-v0``, ``marlkit/envs/text/meeting_point.py``, its reward unchanged): two agents hold
halves of a town map with one shared landmark; after the simultaneous talk turns each answers ``"meet at <cell>"``;
+1 to both when both name the shared landmark's cell. ``token_cost`` charges each message's sender per token
(words). Two settings:

* ``--talk cells`` (the default): 2 landmarks per half, one talk turn. A message is 1 to 3 words, each a cell of
  the sender's half or a filler word (``cell_messages``); to answer, an agent reads its partner's message
  (``cell_prompt``). The message carries what the partner needs: the meeting point is the one of its two cells
  the other names, so saying both cells and reading wins every game, while without messages a pair wins at most
  1/2 per agent (1/4 by picking at random, 1/3 with a fixed convention over the 3 landmarks).
* ``--talk free --landmarks 4 --talk-turns 2``: the game's defaults, talk free text of at most
  ``--max-new-tokens`` tokens (the model may end a message early with its end-of-text token).

**Learner**: a width-64 GPT-2 over the game's words (``tiny_gpt2`` + ``word_tokenizer``, built in memory), shared
by both agents; the answer is constrained to the agent's own landmark cells. PPO on per-turn reward-to-go with a
per-agent batch baseline. The same run with ``token_cost = 0`` is the control: what RL does to the messages
without a price on them.

**Columns** (fixed evaluation seeds, before and after training, temperature 1):

* task completion: share of episodes where both named the meeting point;
* communication efficiency: tokens (messages and answers) spent over all episodes per successful episode, and talk
  tokens per episode;
* collaboration: the completion rate with the messages muted (both agents' talk replaced by empty text) and the
  gain of talking over muted (``marlkit.metrics.collaboration_gain``).

Floor: tokens per successful episode falls by >= 30% at an equal or higher completion rate.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table, write_json

from marlkit.envs.text import TextEnv
from marlkit.envs.text.meeting_point import MeetingPoint, cell_name
from marlkit.llm.games import game_texts
from marlkit.llm.tiny import tiny_gpt2, word_tokenizer
from marlkit.llm.token_rl import TokenRL, TokenRLConfig, keep_lines
from marlkit.metrics import collaboration_gain, communication_efficiency, outcome_arrays, task_completion_rate


def answers(env: TextEnv, agent: str) -> list[str] | None:
    """The answers an agent may give: free talk, then ``"meet at <cell>"`` for the cells of its own half."""
    assert isinstance(env, MeetingPoint)
    if env.phase == "talk":
        return None
    return [f"meet at {cell_name(c)}" for _, c in env.halves[agent]]


#: Words a message may carry besides cells in the ``--talk cells`` setting: they say nothing about the map.
FILLERS = ("hi", "ok")


def cell_messages(env: TextEnv, agent: str) -> list[str] | None:
    """``--talk cells``: a message is 1 to 3 words, each a cell of the agent's own half or a filler word (so it can
    carry the agent's cells, or nothing); then the answer as in ``answers``."""
    assert isinstance(env, MeetingPoint)
    if env.phase != "talk":
        return answers(env, agent)
    words = [cell_name(c) for _, c in env.halves[agent]] + list(FILLERS)
    return [" ".join(m) for n in (1, 2, 3) for m in itertools.product(words, repeat=n)]


class Muted(MeetingPoint):
    """Meeting point whose talk turns deliver nothing: every message is replaced by empty text."""

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        if self.phase == "talk":
            actions = {a: "" for a in actions}
        return super()._step(actions)


PROMPT = keep_lines("Your half", "  talk", "Talk", "Now", "Your answer")


def cell_prompt(agent: str, observation: str) -> str:
    """``--talk cells``: what an agent reads. To talk, its half of the map and the talk line; to answer, its
    partner's messages alone (the answer is constrained to its own cells, so the partner's message is all it
    needs: the meeting point is the one of its cells the partner names)."""
    lines = observation.split("\n")
    if any(line.startswith("Talk") for line in lines):
        return "\n".join(line for line in lines if line.startswith(("Your half", "Talk")))
    return "\n".join(line for line in lines if line.startswith("  talk") and ", you:" not in line)


def measure(trainer: TokenRL, episodes: int, seed: int, game: dict[str, Any]) -> dict[str, float]:
    outcomes = trainer.evaluate(episodes, seed)
    completed, messages, tokens = outcome_arrays(outcomes)
    cost = communication_efficiency(completed, messages, tokens)
    answer_tokens = 2 * 3  # "meet at C4" from each agent
    muted = trainer.evaluate(episodes, seed, make_env=lambda: Muted(**game))
    muted_completed = outcome_arrays(muted)[0]
    collab = collaboration_gain(completed, {"muted": muted_completed})
    return {
        "completion": task_completion_rate(completed),
        "tokens_per_success": cost.tokens_per_success,
        "messages_per_success": cost.messages_per_success,
        "talk_tokens_per_episode": float(np.mean(tokens)) - answer_tokens,
        "completion_muted": collab.alone_rates["muted"],
        "collaboration_gain": collab.gain,
    }


def run(args: argparse.Namespace, seed: int, token_cost: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    game = {"landmarks_per_half": args.landmarks, "talk_turns": args.talk_turns, "token_cost": token_cost}
    make = lambda: MeetingPoint(**game)
    allowed = cell_messages if args.talk == "cells" else answers
    cells = [cell_name(c) for c in range(25)]
    extra = [*cells, *FILLERS] if args.talk == "cells" else []
    tok = word_tokenizer(game_texts(make, allowed, 20, seed=0), extra_words=extra)
    model = tiny_gpt2(tok, seed)
    config = TokenRLConfig(
        episodes_per_update=args.games,
        num_envs=args.games,
        lr=args.lr,
        epochs=args.epochs,
        minibatch_turns=args.minibatch,
        max_new_tokens=args.max_new_tokens,
        credit="to_go",
        baseline="batch",
        seed=seed,
    )
    prompt = cell_prompt if args.talk == "cells" else PROMPT
    trainer = TokenRL(make, model, tok, config, actions=allowed, prompt=prompt)
    eval_seed = 50_000 + seed
    before = measure(trainer, args.eval_episodes, eval_seed, game)
    history = []
    for k in range(args.updates):
        metrics = trainer.update(trainer.play(args.games, int(np.random.SeedSequence([seed, k]).generate_state(1)[0])))
        history.append({"update": k + 1, **metrics})
    after = measure(trainer, args.eval_episodes, eval_seed, game)
    drop = 1 - after["tokens_per_success"] / before["tokens_per_success"]
    return {
        "seed": seed,
        "token_cost": token_cost,
        "talk": args.talk,
        "landmarks_per_half": args.landmarks,
        "talk_turns": args.talk_turns,
        "completion_before": before["completion"],
        "completion_after": after["completion"],
        "tokens_per_success_before": before["tokens_per_success"],
        "tokens_per_success_after": after["tokens_per_success"],
        "tokens_per_success_drop": drop,
        "talk_tokens_per_episode_before": before["talk_tokens_per_episode"],
        "talk_tokens_per_episode_after": after["talk_tokens_per_episode"],
        "completion_muted_after": after["completion_muted"],
        "collaboration_gain_after": after["collaboration_gain"],
        "before": before,
        "after": after,
        "floor_met": bool(drop >= 0.30 and after["completion"] >= before["completion"]),
        "updates": args.updates,
        "games_per_update": args.games,
        "eval_episodes": args.eval_episodes,
        "time_s": round(time.perf_counter() - t0, 1),
        "history": history,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..K-1")
    parser.add_argument(
        "--talk", choices=("cells", "free"), default="cells", help="messages of cells and fillers, or free text"
    )
    parser.add_argument("--landmarks", type=int, default=2, help="landmarks per half (one shared)")
    parser.add_argument("--talk-turns", type=int, default=1)
    parser.add_argument("--updates", type=int, default=150)
    parser.add_argument("--games", type=int, default=32, help="episodes per update")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--epochs", type=int, default=4, help="PPO passes over each batch")
    parser.add_argument("--minibatch", type=int, default=64, help="turns per gradient step")
    parser.add_argument("--token-cost", type=float, default=0.05, help="reward per talk token (charged to the sender)")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="longest message in tokens")
    parser.add_argument("--eval-episodes", type=int, default=512)
    parser.add_argument("--no-control", action="store_true", help="skip the token_cost = 0 control runs")
    parser.add_argument("--json", default=None, help="write the records into this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = []
    costs = [args.token_cost] if args.no_control else [args.token_cost, 0.0]
    for seed in range(args.seeds):
        for cost in costs:
            r = run(args, seed, cost)
            records.append(r)
            print(
                f"seed {seed} cost {cost}: completion {r['completion_before']:.3f} -> {r['completion_after']:.3f}; "
                f"tokens/success {r['tokens_per_success_before']:.1f} -> {r['tokens_per_success_after']:.1f} "
                f"({100 * r['tokens_per_success_drop']:+.0f}% drop); muted {r['completion_muted_after']:.3f}; "
                f"{r['time_s']:.0f}s",
                flush=True,
            )
    columns = [
        "seed",
        "token_cost",
        "completion_before",
        "completion_after",
        "tokens_per_success_before",
        "tokens_per_success_after",
        "tokens_per_success_drop",
        "completion_muted_after",
        "collaboration_gain_after",
    ]
    print_table("meeting-point: token RL with a cost per talk token (tiny GPT-2)", records, columns)
    if args.json:
        write_json("llm_meeting_point", records, args.json, ("torch", "transformers"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
