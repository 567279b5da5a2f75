"""Emergent communication in the referential game: does a learned language generalise to unseen objects?

    python benchmarks/referential.py --method reinforce|gumbel|both --seeds 3 --json benchmarks/results/referential.json
                                     [--steps N] [--jobs J] [--set speaker_entropy=0.02 ...]

The game: 4 attributes x 5 values (625 objects, 125 held out by ``split_seed`` 0), 5 candidates, messages of
exactly 4 symbols from a vocabulary of 10 (no end-of-message symbol: 10^4 messages for 625 objects, so a
one-symbol-per-attribute code fits, and every message costs the same). Per seed it trains a speaker and a listener
(``marlkit.algorithms.signalling`` with its default config, one torch thread per run; ``--jobs J`` runs J runs at
once in separate processes) and evaluates them greedily:

* ``heldout_accuracy`` — every held-out object as the target 20 times (2,500 games, distractors from all objects,
  drawn by ``ReferentialGame.eval_batch`` with seed 12345, the same for every run); ``train_accuracy`` likewise
  on the training objects, 5 times each (2,500 games). Chance is 1/5.
* ``topsim``, ``posdis``, ``bosdis``, ``message_entropy``, ``distinct_messages`` — of the speaker's greedy
  messages for all 625 objects (``marlkit.metrics``).
* ``ablated_accuracy`` and ``listener_influence_js`` — the held-out games again with each message replaced by the
  message of another, random game: the listener's accuracy then, and the mean Jensen-Shannon divergence (bits)
  between its choice distributions with the real and the replaced message (positive listening).

The peer is EGG (facebookresearch/EGG), whose discrimination game on this setting is reported at about 0.92
held-out accuracy with REINFORCE and 0.82 with Gumbel-softmax; it was not run here (no internet at run time), so
the comparison is with those numbers, not a measurement in the same run. Records: ``method, seed, steps,
heldout_accuracy, train_accuracy, topsim, posdis, bosdis, message_entropy, distinct_messages, ablated_accuracy,
listener_influence_js, wall_s`` and the configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pin_one_core, print_table, write_json

GAME = {"n_attributes": 4, "n_values": 5, "n_candidates": 5, "max_len": 4, "vocab_size": 10, "eos": False}
#: Updates per run: about 3 and 2 minutes on one idle core (batch 512, width 128).
STEPS = {"reinforce": 3000, "gumbel": 2000}
EVAL_SEED = 12345


def run(method: str, seed: int, steps: int, overrides: dict[str, Any]) -> dict[str, Any]:
    import torch

    from marlkit import metrics
    from marlkit.algorithms.signalling import Signalling, SignallingConfig
    from marlkit.envs.text.referential import ReferentialConfig, ReferentialGame

    torch.set_num_threads(1)
    game = ReferentialGame(ReferentialConfig(**GAME), seed=seed)
    config = SignallingConfig(method=method, **overrides)
    agents = Signalling(game, config, seed=seed)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        out = agents.train_step()
        if step % 500 == 0:
            print(f"  {method} seed {seed} step {step}: train reward {out['reward']:.3f}", flush=True)
    wall = time.perf_counter() - start

    heldout = game.eval_batch("heldout", repeats=20, seed=EVAL_SEED)
    train = game.eval_batch("train", repeats=5, seed=EVAL_SEED)
    played = agents.evaluate(heldout)
    language = agents.messages(game.objects)
    signalling = metrics.positive_signalling(game.objects, language)
    # positive listening: the same games with each message swapped for another game's message
    swapped = played["messages"][np.random.default_rng(EVAL_SEED).permutation(len(played["messages"]))]
    probs, probs_swapped = agents.listener_probs(heldout, played["messages"]), agents.listener_probs(heldout, swapped)
    return {
        "method": method,
        "seed": seed,
        "steps": steps,
        "heldout_accuracy": played["accuracy"],
        "train_accuracy": agents.evaluate(train)["accuracy"],
        "topsim": metrics.topographic_similarity(game.objects, language),
        "posdis": metrics.posdis(game.objects, language),
        "bosdis": metrics.bosdis(game.objects, language),
        "message_entropy": metrics.message_entropy(language),
        "distinct_messages": int(len(np.unique(language, axis=0))),
        "context_independence": signalling.context_independence,
        "ablated_accuracy": float(game.reward(heldout, probs_swapped.argmax(-1)).mean()),
        "listener_influence_js": metrics.listener_influence(probs, probs_swapped),
        "wall_s": round(wall, 1),
        "game": dict(GAME),
        "config": dataclasses.asdict(config),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=("reinforce", "gumbel", "both"), default="both")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    p.add_argument("--steps", type=int, default=None, help=f"updates per run (default {STEPS})")
    p.add_argument("--json", default=None, help="write the records here")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process with one thread")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="SignallingConfig overrides")
    args = p.parse_args(argv)
    overrides = _parse_overrides(args.set)
    methods = ("reinforce", "gumbel") if args.method == "both" else (args.method,)
    runs = [(m, seed, args.steps or STEPS[m], overrides) for m in methods for seed in range(args.seeds)]
    if args.jobs > 1:  # one process per run; each keeps to one thread (set in run) but not to one core
        from concurrent.futures import ProcessPoolExecutor, as_completed

        def runs_order(r: dict[str, Any]) -> tuple[int, int]:
            return methods.index(r["method"]), r["seed"]

        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(_run_and_report, r) for r in runs]
            done = []
            for future in as_completed(futures):  # write what has finished, so a stopped benchmark keeps it
                done.append(future.result())
                write_json("referential", sorted(done, key=runs_order), args.json, packages=("torch",))
            records = sorted(done, key=runs_order)
    else:
        pin_one_core()
        records = [_run_and_report(r) for r in runs]
    summary = []
    for method in methods:
        rs = [r for r in records if r["method"] == method]
        summary.append(
            {
                "method": method,
                "seed": "mean",
                **{
                    k: float(np.mean([r[k] for r in rs]))
                    for k in (
                        "heldout_accuracy",
                        "train_accuracy",
                        "topsim",
                        "posdis",
                        "bosdis",
                        "ablated_accuracy",
                        "wall_s",
                    )
                },
            }
        )
    print_table(
        "Referential game 4x5, 5 candidates, L=4, vocab 10 (greedy; chance 0.20)",
        records + summary,
        [
            "method",
            "seed",
            "steps",
            "heldout_accuracy",
            "train_accuracy",
            "topsim",
            "posdis",
            "bosdis",
            "distinct_messages",
            "ablated_accuracy",
            "wall_s",
        ],
    )
    write_json("referential", records, args.json, packages=("torch",))


def _run_and_report(args: tuple[str, int, int, dict[str, Any]]) -> dict[str, Any]:
    r = run(*args)
    print(
        f"{r['method']} seed {r['seed']}: held-out {r['heldout_accuracy']:.3f}, train {r['train_accuracy']:.3f}, "
        f"topsim {r['topsim']:.3f} ({r['wall_s']:.0f} s)",
        flush=True,
    )
    return r


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    from marlkit.algorithms.signalling import SignallingConfig

    fields = {f.name: f for f in dataclasses.fields(SignallingConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields or key == "method":
            allowed = ", ".join(k for k in fields if k != "method")
            raise SystemExit(f"--set takes FIELD=VALUE with FIELD one of: {allowed}; got {pair!r}")
        out[key] = type(getattr(SignallingConfig(), key))(value)
    return out


if __name__ == "__main__":
    main()
