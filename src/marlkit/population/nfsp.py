"""Neural Fictitious Self-Play on a two-player zero-sum extensive-form game.

Heinrich and Silver (2016), "Deep Reinforcement Learning from Self-Play in Imperfect-Information Games". Each player
has two networks over its information states' feature vectors (``ExtensiveGame.features``): a Q-network trained by
DQN on the transitions it experiences (its approximate best response to the others), and an average-policy network
trained by supervised learning (cross-entropy) on the best-response moves it made, kept in a reservoir sample so
that the network learns their time average. In every game each player plays its best response (ε-greedy on Q)
with the anticipatory probability ``η`` and its average policy otherwise. The average policies approach a Nash
equilibrium; their NashConv is measured exactly (``efg.nash_conv``) on the table of what the network plays at
every information state.

Games are played many at a time, as arrays walking the game tree (``efg.play``); the networks act from a table of
their outputs at every information state, recomputed before every round of games, which is the same as asking them
state by state since they do not change during a round. The reservoir stores the best response's sampled moves
(its ε-greedy choices), as the paper does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from marlkit.population.efg import ExtensiveGame, nash_conv, play
from marlkit.population.rl_oracle import DQN, Buffer, mlp, transitions


@dataclass
class NFSPConfig:
    hidden: tuple[int, ...] = (64,)
    """Hidden layer sizes of both networks."""
    anticipatory: float = 0.1
    """η: the probability that a player plays its best response in a game (else its average policy)."""
    epsilon_start: float = 0.06
    """ε of the ε-greedy best response at the start, decaying linearly to ``epsilon_end``."""
    epsilon_end: float = 0.001
    epsilon_decay_games: int = 200_000
    """Games over which ε decays."""
    rl_lr: float = 0.01
    """SGD learning rate of the Q-networks."""
    sl_lr: float = 0.01
    """SGD learning rate of the average-policy networks."""
    batch_size: int = 128
    replay_capacity: int = 200_000
    """Transitions each player's DQN replay keeps (first in, first out)."""
    reservoir_capacity: int = 2_000_000
    """Best-response moves each player's reservoir keeps (a uniform sample of all it has seen)."""
    learn_every: int = 64
    """Transitions a player collects per update of each of its networks."""
    target_every: int = 300
    """Q-network updates between copies into the target network."""
    min_buffer: int = 1_000
    """Transitions (and reservoir moves) a player needs before its networks learn."""
    games_per_round: int = 128
    """Games played at once between rounds of updates."""


@dataclass
class NFSPResult:
    nash_conv: list[tuple[int, float]] = field(default_factory=list)
    """(games played, NashConv of the average policies) at each evaluation."""
    policy: np.ndarray | None = None
    """The last average policy as a table (both players' rows)."""
    wall_s: float = 0.0
    """Seconds spent training (evaluations excluded)."""


class NFSP:
    """Both players' networks and buffers, and the loop that plays and learns (``train``)."""

    def __init__(self, game: ExtensiveGame, config: NFSPConfig | None = None, seed: int = 0) -> None:
        self.game, self.config = game, config or NFSPConfig()
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        c = self.config
        self.dqn = [DQN(game, p, c.hidden, c.rl_lr, c.replay_capacity, c.target_every, self.rng) for p in (0, 1)]
        self.pi = [mlp(game.features.shape[1], c.hidden, game.num_actions) for _ in (0, 1)]
        self.pi_opt = [torch.optim.SGD(pi.parameters(), lr=c.sl_lr) for pi in self.pi]
        self.reservoir = [Buffer(c.reservoir_capacity, True, self.rng) for _ in (0, 1)]
        self.games = 0
        self._pending = [0, 0]  # transitions collected since the player's last update
        self._features = torch.as_tensor(game.features)
        self._legal = torch.as_tensor(game.legal)

    def average_policy(self) -> np.ndarray:
        """What the average-policy networks play at every information state (each state by its player's)."""
        probs = np.zeros(self.game.legal.shape)
        with torch.no_grad():
            for p in (0, 1):
                rows = self.game.infostate_player == p
                logits = self.pi[p](self._features[rows]).masked_fill(~self._legal[rows], -torch.inf)
                probs[rows] = torch.softmax(logits, dim=1).double().numpy()
        return probs

    def _play(self, n: int) -> None:
        """Play ``n`` games at once and store what each player saw."""
        c, game = self.config, self.game
        frac = min(1.0, self.games / max(1, c.epsilon_decay_games))
        epsilon = c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)
        average = self.average_policy()
        best_response = self.dqn[0].policy(epsilon) + self.dqn[1].policy(epsilon)  # each fills its player's rows
        mode = self.rng.random((n, 2)) < c.anticipatory  # per game and player: plays its best response
        act = lambda p, games, states: np.where(mode[games, p, None], best_response[states], average[states])
        played = play(game, act, n, self.rng)
        for p in (0, 1):
            payoff = played.payoff * (1.0 if p == 0 else -1.0)
            batch = transitions(played.moves[p], payoff, n)
            self.dqn[p].replay.add(**batch)
            self._pending[p] += len(batch["state"])
            for m in played.moves[p]:  # the best response's moves teach the average policy
                br = mode[m.games, p]
                if br.any():
                    self.reservoir[p].add(state=m.states[br], action=m.actions[br])
        self.games += n

    def _learn(self, p: int) -> None:
        c = self.config
        while self._pending[p] >= c.learn_every:
            self._pending[p] -= c.learn_every
            if self.dqn[p].replay.size >= c.min_buffer:
                self.dqn[p].step(c.batch_size)
            if self.reservoir[p].size >= c.min_buffer:
                self._pi_step(p)

    def _pi_step(self, p: int) -> None:
        b = self.reservoir[p].sample(self.config.batch_size)
        s = torch.as_tensor(b["state"])
        logits = self.pi[p](self._features[s]).masked_fill(~self._legal[s], -1e9)
        loss = nn.functional.cross_entropy(logits, torch.as_tensor(b["action"]))
        self.pi_opt[p].zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        self.pi_opt[p].step()

    def train(self, games: int, eval_every: int | None = None) -> NFSPResult:
        """Play (at least) ``games`` more games, learning as it goes; measure the average policies' NashConv every
        ``eval_every`` games (default: only at the end)."""
        result = NFSPResult()
        target, next_eval = self.games + games, self.games + (eval_every or games)
        while self.games < target:
            start = time.perf_counter()
            self._play(self.config.games_per_round)
            for p in (0, 1):
                self._learn(p)
            result.wall_s += time.perf_counter() - start
            if self.games >= next_eval or self.games >= target:
                result.policy = self.average_policy()
                result.nash_conv.append((self.games, nash_conv(self.game, result.policy)))
                next_eval += eval_every or games
        return result
