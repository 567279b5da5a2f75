"""Play a trained marlkit team inside mpe2's own ``simple_spread_v3`` (a PettingZoo ``ParallelEnv``).

    marlkit train mappo spread-v0 --steps 300000 --seed 0 --out runs
    python examples/play_in_mpe2.py runs/<run> --episodes 10

``spread-v0`` is ``simple_spread_v3`` transition for transition (the same agents, observations and action
indices), so the team plays there as it did in training. ``marlkit.load`` reads only the weights-only policy of the
run's checkpoint: no optimiser, replay or marlkit env is built. Prints the mean per-agent return of each episode
and their mean, as JSON.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import marlkit


def play(run_dir: str, episodes: int = 10, seed: int = 0) -> list[float]:
    """The mean per-agent return of each of ``episodes`` episodes (the first reset seeded with ``seed``)."""
    from mpe2 import simple_spread_v3

    policy = marlkit.load(run_dir)
    env = simple_spread_v3.parallel_env()
    returns = []
    for episode in range(episodes):
        obs, infos = env.reset(seed=seed if episode == 0 else None)
        policy.reset()  # a new episode (clears a recurrent policy's hidden state)
        total = 0.0
        while env.agents:
            obs, rewards, _, _, infos = env.step(policy.act_pettingzoo(obs, infos))
            total += sum(rewards.values()) / len(rewards)
        returns.append(total)
    env.close()
    return returns


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory of spread-v0 (e.g. from `marlkit train mappo spread-v0`)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    returns = play(args.run_dir, args.episodes, args.seed)
    result = {"episodes": len(returns), "mean_return": sum(returns) / len(returns), "returns": returns}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
