"""Roles emerging in a team with shared weights: MAPPO on spread-v0 learns to send each agent to a landmark of its own.

    python examples/role_emergence.py [--steps 1000000] [--seed 0] [--plot role_emergence.png]

One network acts for all three agents (each is told apart only by a one-hot id appended to its observation), yet
the agents must split the landmarks between them. Every ``--eval-every`` env-steps the greedy team plays
``--episodes`` episodes and the script prints role specialisation, I(agent; landmark | episode) / log2(3) (1: every agent on a
landmark of its own; 0: all on one), System Neural Diversity of the agents' action distributions and the return;
a random and the untrained team are printed first for comparison.
"""

from __future__ import annotations

import argparse

import torch

from marlkit.experiment.roles import RoleSetup, role_baselines, role_curve


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1_000_000, help="env-steps of training")
    p.add_argument("--eval-every", type=int, default=100_000)
    p.add_argument("--episodes", type=int, default=300, help="episodes per evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write the curve to this PNG")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    setup = RoleSetup(steps=args.steps, eval_every=args.eval_every, eval_episodes=args.episodes)
    for team, m in role_baselines(setup, args.seed).items():
        print(f"{team:>9}: specialisation {m['specialisation']:.3f}  return {m['return']:7.2f}")
    curve = role_curve(setup, args.seed)
    for row in curve:
        print(
            f"{int(row['env_steps']):>9}: specialisation {row['specialisation']:.3f}  SND {row['snd']:.3f}  "
            f"return {row['return']:7.2f}"
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["env_steps"] for r in curve], [r["specialisation"] for r in curve], marker="o")
        ax.set(xlabel="env-steps", ylabel="role specialisation", title="MAPPO on spread-v0")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
    return curve


if __name__ == "__main__":
    main()
