"""Best responses learned by DQN from sampled games, for PSRO with a reinforcement-learning oracle (and the Q-learning
half of NFSP).

``DQN`` is one player's Q-network over the feature vectors of its information states (``ExtensiveGame.features``),
with a replay buffer and a target network (Mnih et al. 2015); rewards arrive at the end of a game (discount 1).
``DQNOracle`` trains a fresh one against a fixed opponent policy on games played as arrays (``efg.play``) and returns
the greedy policy of its Q-network as a table: a pure strategy, as an exact best response would be, but learned
from sampled games only. ``extensive_psro(game, n, oracle=DQNOracle(...))`` is PSRO with that oracle (Lanctot et al.
2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from marlkit.population.efg import ExtensiveGame, Move, play


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class Buffer:
    """Columns of equal length in preallocated arrays. ``reservoir`` keeps a uniform sample of everything added
    (Vitter's algorithm R); otherwise the oldest entries are replaced first."""

    def __init__(self, capacity: int, reservoir: bool, rng: np.random.Generator) -> None:
        self.capacity, self.reservoir, self.rng = capacity, reservoir, rng
        self.size = self.seen = 0
        self.data: dict[str, np.ndarray] = {}

    def add(self, **columns: np.ndarray) -> None:
        n = len(next(iter(columns.values())))
        if not self.data:
            self.data = {k: np.zeros((self.capacity, *v.shape[1:]), v.dtype) for k, v in columns.items()}
        if self.reservoir:
            slots = np.arange(self.seen, self.seen + n)
            full = slots >= self.capacity
            slots[full] = self.rng.integers(0, slots[full] + 1)  # the k-th item is kept with probability capacity/k
            keep = slots < self.capacity
            slots, columns = slots[keep], {k: v[keep] for k, v in columns.items()}
        else:
            slots = (self.seen + np.arange(n)) % self.capacity
        for k, v in columns.items():
            self.data[k][slots] = v
        self.seen += n
        self.size = min(self.capacity, self.seen)

    def sample(self, n: int) -> dict[str, np.ndarray]:
        idx = self.rng.integers(0, self.size, size=n)
        return {k: v[idx] for k, v in self.data.items()}


def transitions(moves: list[Move], payoff: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """One player's moves in ``n`` games (``efg.Played.moves[player]``) as DQN transitions: each move leads to the
    player's next move in the same game, or ends the game with ``payoff`` (the player's own, per game)."""
    nxt = np.full(n, -1, dtype=np.int64)  # per game: the player's state after the move being looked at
    out: list[tuple[np.ndarray, ...]] = []
    for m in reversed(moves):
        done = nxt[m.games] < 0
        out.append((m.states, m.actions, np.where(done, payoff[m.games], 0.0), np.maximum(nxt[m.games], 0), done))
        nxt[m.games] = m.states
    names = ("state", "action", "reward", "next_state", "done")
    return {k: np.concatenate([t[i] for t in out]) for i, k in enumerate(names)}


class DQN:
    """One player's Q-learning: network, target network, replay, SGD."""

    def __init__(
        self,
        game: ExtensiveGame,
        player: int,
        hidden: tuple[int, ...],
        lr: float,
        replay: int,
        target_every: int,
        rng: np.random.Generator,
    ) -> None:
        self.game, self.player, self.target_every = game, player, target_every
        n_in = game.features.shape[1]
        self.q, self.target = mlp(n_in, hidden, game.num_actions), mlp(n_in, hidden, game.num_actions)
        self.target.load_state_dict(self.q.state_dict())
        self.opt = torch.optim.SGD(self.q.parameters(), lr=lr)
        self.replay = Buffer(replay, False, rng)
        self.updates = 0
        self._rows = game.infostate_player == player
        self._features = torch.as_tensor(game.features)
        self._legal = torch.as_tensor(game.legal)

    def policy(self, epsilon: float) -> np.ndarray:
        """The ε-greedy policy of the Q-network at the player's information states (other rows: zeros)."""
        table = np.zeros(self.game.legal.shape)
        with torch.no_grad():
            q = self.q(self._features[self._rows]).masked_fill(~self._legal[self._rows], -torch.inf)
        rows = np.flatnonzero(self._rows)
        table[rows, q.argmax(dim=1).numpy()] = 1.0
        uniform = self.game.legal[rows] / self.game.legal[rows].sum(axis=1, keepdims=True)
        table[rows] = (1.0 - epsilon) * table[rows] + epsilon * uniform
        return table

    def step(self, batch_size: int) -> None:
        """One SGD step on the squared TD error of a sampled batch: r + max over legal a' of Q_target(s', a')."""
        b = self.replay.sample(batch_size)
        s, s2 = torch.as_tensor(b["state"]), torch.as_tensor(b["next_state"])
        with torch.no_grad():
            q_next = self.target(self._features[s2]).masked_fill(~self._legal[s2], -torch.inf).max(dim=1).values
            target = torch.as_tensor(b["reward"], dtype=torch.float32) + torch.where(
                torch.as_tensor(b["done"]), 0.0, q_next
            )
        q = self.q(self._features[s]).gather(1, torch.as_tensor(b["action"])[:, None]).squeeze(1)
        loss = nn.functional.mse_loss(q, target)
        self.opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        self.opt.step()
        self.updates += 1
        if self.updates % self.target_every == 0:
            self.target.load_state_dict(self.q.state_dict())


@dataclass
class DQNOracleConfig:
    games: int = 10_000
    """Games played against the opponent per best response."""
    games_per_round: int = 128
    """Games played at once between rounds of updates."""
    hidden: tuple[int, ...] = (64,)
    lr: float = 0.05
    """SGD learning rate of the Q-network."""
    batch_size: int = 128
    updates_per_round: int = 32
    """SGD steps after each round of games."""
    epsilon_start: float = 0.5
    """ε of ε-greedy exploration, decaying linearly to ``epsilon_end`` over the games."""
    epsilon_end: float = 0.02
    replay: int = 20_000
    target_every: int = 50
    min_buffer: int = 500


class DQNOracle:
    """A PSRO oracle: ``oracle(game, profile, player)`` returns ``profile`` with ``player``'s rows replaced by the
    greedy policy of a DQN trained from scratch against the other player's rows of ``profile``. Seeded once; every
    call draws from the same generator, so a PSRO run is reproducible."""

    def __init__(self, config: DQNOracleConfig | None = None, seed: int = 0) -> None:
        self.config = config or DQNOracleConfig()
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.calls = 0
        self.games = 0

    def __call__(self, game: ExtensiveGame, profile: np.ndarray, player: int) -> np.ndarray:
        c = self.config
        torch.manual_seed(self.seed * 100_003 + self.calls)
        self.calls += 1
        dqn = DQN(game, player, c.hidden, c.lr, c.replay, c.target_every, self.rng)
        played = 0
        while played < c.games:
            epsilon = c.epsilon_start + (c.epsilon_end - c.epsilon_start) * played / c.games
            mine = dqn.policy(epsilon)
            act = lambda p, games, states, mine=mine: mine[states] if p == player else profile[states]
            result = play(game, act, c.games_per_round, self.rng)
            payoff = result.payoff * (1.0 if player == 0 else -1.0)
            dqn.replay.add(**transitions(result.moves[player], payoff, c.games_per_round))
            played += c.games_per_round
            if dqn.replay.size >= c.min_buffer:
                for _ in range(c.updates_per_round):
                    dqn.step(c.batch_size)
        self.games += played
        out = np.array(profile)
        rows = game.infostate_player == player
        out[rows] = dqn.policy(0.0)[rows]
        return out
