"""RL on tokens: a tiny transformer language model trained by policy gradients on its own tokens to play a text game.

    python benchmarks/token_rl.py --game tictactoe --seeds 3 --json benchmarks/results/token_rl.json
    python benchmarks/token_rl.py --game stag-hunt --seeds 3 --json benchmarks/results/token_rl.json

Everything is built in code, nothing is downloaded: a word-level tokenizer over the words the game prints (collected
from a few episodes of random legal play, the same for every seed), and a GPT-2 of 2 layers, width 64, initialised
from the seed (``marlkit.llm.tiny.tiny_gpt2``). The model reads the game's observation text and answers with
tokens. Its moves are constrained to the legal ones by masking logits (``marlkit.llm.tokens.AllowedSequences``); the
*untrained* model plays under the same constraint, so it is close to a uniformly random legal player: that is the
fair "before".

* ``tictactoe``: ``tictactoe-v0`` against the built-in uniformly random opponent, the model playing O (second to move),
  where a random player wins about 29% of games and a win-block-centre heuristic about 82%: room to learn. Reported: win
  rate (a draw is not a win) and non-loss rate. The model reads the lines of the observation that change from turn to
  turn, the board and "Your turn (O). Legal moves: ..." (``keep_lines(" ", "Your turn")``: 39 tokens instead of 127; the
  dropped lines, who plays which mark and the answer format, are the same in every observation, and the last move is on
  the board). Budget: 120 updates of 128 games, 4 PPO epochs over each batch in minibatches of 64 turns. Why: with the
  first budget (80 updates of 64 games, 2 epochs in minibatches of 128, the whole observation) the win rate stopped at
  0.59-0.61, which is what a fixed move order (centre, corners, edges; no board reading at all) wins against a random X,
  and more updates did not move it (seed 0, first budget with the shorter prompt: 0.52-0.60 every 20 updates from 40 to
  200; neither did a wider or deeper model, a lower learning rate or an entropy bonus). PPO's per-token KL between
  consecutive policies was ~0.001: the steps were small and noisy. Going past the fixed order needs the board read
  (taking a cell that completes a line adds 13 points to it); twice the games per batch (less noise in which moves paid)
  and eight times the gradient steps per batch (4 epochs of minibatches of 64 turns instead of 2 of 128) do it, and the
  shorter prompt pays for them (a third of the tokens in every forward pass).
* ``stag-hunt``: ``stag-hunt-talk-v0`` (3 rounds, one free-text message each before each move), both players
  learning with shared weights (the observation, read verbatim, names the player). Reported: coordination rate,
  the fraction of rounds where both hunt stag. Uniformly random play coordinates 25% of rounds.

Rates are measured by sampling from the policy (temperature 1) on the same evaluation games before and after
training; the greedy policy after training is reported too. Writes one record per (game, seed); records of other
games already in the JSON file are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, print_table, versions

from marlkit.envs.text import TextEnv, TextOutcome, make_text
from marlkit.llm.games import game_texts
from marlkit.llm.tiny import tiny_gpt2, word_tokenizer
from marlkit.llm.token_rl import TokenRL, TokenRLConfig, keep_lines, observation_prompt

#: Per game: how to build it, what the model may answer, what is measured, and the training budget.
GAMES: dict[str, dict[str, Any]] = {
    "tictactoe": dict(
        make=lambda: make_text("tictactoe-v0", opponent="random", mark="O"),
        actions=lambda env, agent: env.legal_moves(),
        rates={"win": lambda o: o.winner == "player_0", "non_loss": lambda o: o.winner in ("player_0", None)},
        prompt=keep_lines(" ", "Your turn"),
        prompt_name='keep_lines(" ", "Your turn")',
        config=dict(episodes_per_update=128, num_envs=128, lr=3e-3, epochs=4, minibatch_turns=64, max_new_tokens=2),
        updates=120,
    ),
    "stag-hunt": dict(
        make=lambda: make_text("stag-hunt-talk-v0", rounds=3),
        actions=lambda env, agent: list(env.actions) if env.phase == "move" else None,
        rates={"coordination": lambda o: o.extra["coordination_rate"]},
        prompt=observation_prompt,
        prompt_name="observation",
        config=dict(episodes_per_update=16, num_envs=16, lr=3e-3, epochs=2, minibatch_turns=128, max_new_tokens=3),
        updates=40,
    ),
}


def rates(outcomes: list[TextOutcome], measures: dict[str, Callable[[TextOutcome], float]]) -> dict[str, float]:
    return {name: float(np.mean([float(f(o)) for o in outcomes])) for name, f in measures.items()}


def run(game: str, seed: int, updates: int, eval_episodes: int) -> dict[str, Any]:
    spec = GAMES[game]
    make: Callable[[], TextEnv] = spec["make"]
    tokenizer = word_tokenizer(game_texts(make, spec["actions"], 20, seed=0))
    config = TokenRLConfig(**spec["config"], seed=seed)
    trainer = TokenRL(
        make,
        tiny_gpt2(tokenizer, seed, width=64, layers=2),
        tokenizer,
        config,
        actions=spec["actions"],
        prompt=spec["prompt"],
    )
    eval_seed = 10_000 + seed
    before = rates(trainer.evaluate(eval_episodes, eval_seed), spec["rates"])
    start = time.perf_counter()
    history = trainer.train(updates)
    wall = time.perf_counter() - start
    after = rates(trainer.evaluate(eval_episodes, eval_seed), spec["rates"])
    greedy = rates(trainer.evaluate(eval_episodes, eval_seed, greedy=True), spec["rates"])
    main = next(iter(spec["rates"]))
    record: dict[str, Any] = {
        "game": game,
        "seed": seed,
        "measure": main,
        "rate_before": before[main],
        "rate_after": after[main],
        "gain": after[main] - before[main],
        "rate_after_greedy": greedy[main],
        "episodes": updates * config.episodes_per_update,
        "updates": updates,
        "eval_episodes": eval_episodes,
        "wall_s": round(wall, 1),
    }
    for name in list(spec["rates"])[1:]:
        record.update({f"{name}_before": before[name], f"{name}_after": after[name]})
    record["return_first_update"] = history[0]["charts/episodic_return"]
    record["return_last_update"] = history[-1]["charts/episodic_return"]
    record["prompt"] = spec["prompt_name"]
    record["config"] = {k: v for k, v in vars(config).items()}
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--game", choices=sorted(GAMES), default="tictactoe")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1")
    parser.add_argument("--updates", type=int, default=None, help="override the game's number of updates")
    parser.add_argument("--eval-episodes", type=int, default=400)
    parser.add_argument("--json", default=None, help="write/merge the records into this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    updates = args.updates or GAMES[args.game]["updates"]
    records = []
    for seed in range(args.seeds):
        records.append(run(args.game, seed, updates, args.eval_episodes))
        r = records[-1]
        print(
            f"{args.game} seed {seed}: {r['measure']} {r['rate_before']:.3f} -> {r['rate_after']:.3f} "
            f"(greedy {r['rate_after_greedy']:.3f}) in {r['wall_s']:.0f}s",
            flush=True,
        )
    columns = [
        "game",
        "seed",
        "measure",
        "rate_before",
        "rate_after",
        "gain",
        "rate_after_greedy",
        "episodes",
        "wall_s",
    ]
    if args.game == "tictactoe":
        columns[-2:-2] = ["non_loss_before", "non_loss_after"]
    print_table("RL on tokens: tiny GPT-2 (2 layers, d=64), before vs after training", records, columns)
    if args.json:
        path = Path(args.json)
        kept = []
        if path.exists():
            kept = [r for r in json.loads(path.read_text()).get("records", []) if r.get("game") != args.game]
        doc = {
            "benchmark": "token_rl",
            "versions": versions("torch", "transformers", "tokenizers"),
            "machine": machine(),
            "records": kept + records,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
