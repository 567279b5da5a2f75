"""Communication that gets cheaper: token RL with a cost per talk token on the cooperative meeting-point game.

    python benchmarks/llm_meeting_point.py --json benchmarks/results/llm_meeting_point.json

**Game** (``meeting-point-v0``, ``marlkit/envs/text/meeting_point.py``): two agents hold halves of a town map with
one shared landmark; after two simultaneous talk turns each answers ``"meet at <cell>"``; +1 to both when both
name the shared landmark's cell. ``token_cost`` charges each message's sender per token (words).

**Learner**: a width-64 GPT-2 over the game's words (``tiny_gpt2`` + ``word_tokenizer``, built in memory), shared
by both agents; talk is free text of at most ``--max-new-tokens`` tokens (the model may end a message early with
its end-of-text token), the answer is constrained to the agent's own landmark cells. PPO on per-turn
reward-to-go with a per-agent batch baseline. The same run with ``token_cost = 0`` is the control: what RL does to
the messages without a price on them.

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


class Muted(MeetingPoint):
    """Meeting point whose talk turns deliver nothing: every message is replaced by empty text."""

    def _step(self, actions: dict[str, str]) -> tuple[dict[str, float], bool]:
        if self.phase == "talk":
            actions = {a: "" for a in actions}
        return super()._step(actions)


PROMPT = keep_lines("Your half", "  talk", "Talk", "Now", "Your answer")


def measure(trainer: TokenRL, episodes: int, seed: int) -> dict[str, float]:
    outcomes = trainer.evaluate(episodes, seed)
    completed, messages, tokens = outcome_arrays(outcomes)
    cost = communication_efficiency(completed, messages, tokens)
    answer_tokens = 2 * 3  # "meet at C4" from each agent
    muted = trainer.evaluate(episodes, seed, make_env=lambda: Muted())
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
    make = lambda: MeetingPoint(token_cost=token_cost)
    tok = word_tokenizer(game_texts(make, answers, 20, seed=0))
    model = tiny_gpt2(tok, seed)
    config = TokenRLConfig(
        episodes_per_update=args.games,
        num_envs=args.games,
        lr=args.lr,
        epochs=2,
        minibatch_turns=256,
        max_new_tokens=args.max_new_tokens,
        credit="to_go",
        baseline="batch",
        seed=seed,
    )
    trainer = TokenRL(make, model, tok, config, actions=answers, prompt=PROMPT)
    eval_seed = 50_000 + seed
    before = measure(trainer, args.eval_episodes, eval_seed)
    history = []
    for k in range(args.updates):
        metrics = trainer.update(trainer.play(args.games, int(np.random.SeedSequence([seed, k]).generate_state(1)[0])))
        history.append({"update": k + 1, **metrics})
    after = measure(trainer, args.eval_episodes, eval_seed)
    drop = 1 - after["tokens_per_success"] / before["tokens_per_success"]
    return {
        "seed": seed,
        "token_cost": token_cost,
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
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1")
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--games", type=int, default=32, help="episodes per update")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--token-cost", type=float, default=0.02, help="reward per talk token (charged to the sender)")
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
