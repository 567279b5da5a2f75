"""A mixed team on ``speaker-listener-text-v0``: a tiny GPT-2 speaker (token RL) and an MLP listener (PPO) trained
together, against the controls where the message carries nothing.

    python benchmarks/llm_hybrid.py --json benchmarks/results/llm_hybrid.json

**Runs** (``marlkit.llm.hybrid``, one seed each, the same budget): ``speaker`` (the team), ``deaf`` (the listener's
copy of the message zeroed), ``constant`` (every message replaced by ``red``). The speaker is a width-64 2-layer
GPT-2 over the game's words (``tiny_gpt2`` + ``speaker_tokenizer``), answers constrained to the three colours.

**Columns**: mean team return (the sum over 25 steps of ``-|p_listener - p_goal|^2``), completion (the listener
touches the goal at the end), message accuracy (share of steps whose word is the goal's colour), before and after
training, on fixed evaluation seeds, sampling. The team communicates when its return beats both controls'.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table, write_json

from marlkit.llm.hybrid import HybridConfig, HybridTeam, _speaker_defaults, speaker_tokenizer
from marlkit.llm.tiny import tiny_gpt2


def run(args: argparse.Namespace, seed: int, message: str) -> dict[str, Any]:
    tok = speaker_tokenizer()
    speaker = replace(
        _speaker_defaults(), lr=args.speaker_lr, episodes_per_update=args.copies, num_envs=args.copies, seed=seed
    )
    team = HybridTeam(tiny_gpt2(tok, seed=seed), tok, HybridConfig(speaker=speaker, copies=args.copies,
                                                                    message=message, seed=seed))  # fmt: skip
    before = team.evaluate(args.eval_rounds, seed=10_000 + seed)
    start = time.perf_counter()
    team.train(args.updates)
    wall = time.perf_counter() - start
    after = team.evaluate(args.eval_rounds, seed=10_000 + seed)
    record: dict[str, Any] = {"seed": seed, "message": message, "updates": args.updates, "copies": args.copies,
                              "wall_s": round(wall, 1)}  # fmt: skip
    for name, m in (("before", before), ("after", after)):
        for k, v in m.items():
            record[f"{k.split('/')[1]}_{name}"] = round(v, 4)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--copies", type=int, default=64)
    parser.add_argument("--speaker-lr", type=float, default=1e-3)
    parser.add_argument("--eval-rounds", type=int, default=4, help="evaluation episodes: rounds x copies")
    parser.add_argument("--messages", default="speaker,deaf,constant")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = [run(args, s, m) for s in range(args.seeds) for m in args.messages.split(",")]
    columns = ["seed", "message", "return_before", "return_after", "completed_after", "message_accuracy_after",
               "wall_s"]  # fmt: skip
    print_table("speaker-listener-text: token-RL speaker + PPO listener", records, columns)
    if args.json:
        write_json("llm_hybrid", records, args.json, ("torch", "transformers"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
