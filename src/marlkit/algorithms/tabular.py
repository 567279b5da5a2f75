"""Tabular learners: independent Q-learning and joint-action learners.

Papers: Watkins & Dayan 1992, "Q-learning" (Machine Learning 8); Claus & Boutilier 1998, "The Dynamics of
Reinforcement Learning in Cooperative Multiagent Systems" (AAAI, https://cdn.aaai.org/AAAI/1998/AAAI98-106.pdf).

* **Independent learners** (``iql-tabular``): agent i learns Q_i(s, a_i) and treats the others as part of the
  environment.
* **Joint-action learners** (``jal``): agent i sees the joint action, learns Q_i(s, a_i, a_-i) over it and keeps
  a model of the others: the empirical frequencies of their joint actions in each state (C&B's fictitious-play
  beliefs, ``opponent_model="counts"``), or — the variant where agents watch each other's actions directly and keep
  no model — the others' last joint action in that state (``"last"``: a best response to what they just did).
  It acts on the expected value EV_i(s, a_i) = Σ_{a_-i} Q_i(s, a_i, a_-i) P_i(a_-i | s).

Both explore with Boltzmann (softmax over Q/T, the temperature decaying exponentially per play, as in C&B) or
ε-greedy (linear decay); a play is a step of one copy, counted by the run (``set_progress``: its env-steps over the
copies). The state of agent i is its own observation: observations are hashed to table rows as they
are first seen. Spaces whose size is known (``Discrete``, ``MultiDiscrete``, ``MultiBinary``, integer ``Box``)
are checked against ``max_states`` up front, others as rows fill up; either way a too-large state space is a clear
error with the size, never a silent slowdown. With ``tables_per_copy`` every env copy learns its own tables —
many independent trials in one vectorised run (how ``benchmarks/claus_boutilier.py`` repeats the paper's
experiments).

Updates are vectorised over copies and agents. When several copies update the same entry in one step (shared
tables), the entry moves by α times their mean TD error; with one copy this is exactly Q-learning.

Acting (``tabular_act``) is one function shared by the learner and its weights-only snapshot (``policy()``, a
``TabularPolicy``: the tables and beliefs filled so far, greedy over Q_i or EV_i).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces

from marlkit.core import Capabilities, LearnerBase, PolicyBase, PolicySpaces, register_policy_kind
from marlkit.core.config import check
from marlkit.core.contracts import Actions, Extras, Info, Obs
from marlkit.data.rollout import Rollout
from marlkit.envs.base import MultiAgentEnv
from marlkit.ops.schedules import exponential, linear


@dataclass(frozen=True)
class TabularConfig:
    """Hyper-parameters of the tabular learners (one config for both; ``jal`` reads the ``opponent_model``)."""

    rollout_steps: int = 1
    """Steps of every copy between updates (1: learn after every play)."""
    lr: float = 0.1
    """Learning rate α of the Q update."""
    gamma: float = 0.95
    """Discount factor (a one-shot matrix game ends every play, so it only matters in repeated games)."""
    exploration: Literal["boltzmann", "epsilon"] = "boltzmann"
    """Boltzmann (softmax of Q / temperature) or ε-greedy exploration."""
    temperature_start: float = 16.0
    """Initial Boltzmann temperature."""
    temperature_decay: float = 0.995
    """Temperature multiplier per play (per step of a copy): T_t = max(T_end, T_start * decay^t)."""
    temperature_end: float = 0.05
    """Final Boltzmann temperature."""
    epsilon_start: float = 1.0
    """Initial ε of ε-greedy."""
    epsilon_end: float = 0.05
    """Final ε of ε-greedy."""
    epsilon_plays: int = 1000
    """Plays (steps of a copy) over which ε decays linearly."""
    opponent_model: Literal["counts", "last"] = "counts"
    """JAL only: empirical frequencies of the others' joint actions per state, or their last joint action."""
    tables_per_copy: bool = False
    """Every env copy learns its own tables (independent trials side by side) instead of one shared set."""
    max_states: int = 10_000
    """Most distinct observations a table may hold per group."""
    max_table_entries: int = 50_000_000
    """Most numbers in one group's tables (copies x agents x states x actions)."""

    def __post_init__(self) -> None:
        check(self.rollout_steps >= 1, "algo.rollout_steps", "an integer >= 1", self.rollout_steps)
        check(0 < self.lr <= 1, "algo.lr", "a number in (0, 1]", self.lr)
        check(0 <= self.gamma <= 1, "algo.gamma", "a number in [0, 1]", self.gamma)
        check(
            self.exploration in ("boltzmann", "epsilon"),
            "algo.exploration",
            "'boltzmann' or 'epsilon'",
            self.exploration,
        )
        check(
            self.temperature_start > 0 and self.temperature_end > 0,
            "algo.temperature_start/end",
            "positive numbers",
            (self.temperature_start, self.temperature_end),
        )
        check(0 < self.temperature_decay <= 1, "algo.temperature_decay", "a number in (0, 1]", self.temperature_decay)
        check(
            0 <= self.epsilon_end <= self.epsilon_start <= 1,
            "algo.epsilon_start/end",
            "0 <= epsilon_end <= epsilon_start <= 1",
            (self.epsilon_start, self.epsilon_end),
        )
        check(self.epsilon_plays >= 1, "algo.epsilon_plays", "an integer >= 1", self.epsilon_plays)
        check(
            self.opponent_model in ("counts", "last"), "algo.opponent_model", "'counts' or 'last'", self.opponent_model
        )
        check(self.max_states >= 1, "algo.max_states", "an integer >= 1", self.max_states)


def space_size(space: spaces.Space) -> int | None:
    """Number of distinct values of a space, or ``None`` when it is not finite or not countable from the space."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(np.prod(space.nvec, dtype=object))
    if isinstance(space, spaces.MultiBinary):
        return 2 ** int(np.prod(space.n))
    if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.integer) and space.is_bounded():
        return int(np.prod((space.high.astype(object) - space.low.astype(object) + 1).ravel()))
    return None


class StateIndex:
    """Observation -> table row, rows handed out in the order observations are first seen."""

    def __init__(self, limit: int, what: str) -> None:
        self.rows: dict[bytes, int] = {}
        self.limit, self.what = limit, what

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Rows of observations shaped ``(..., obs_dim)``; one dict lookup per *distinct* observation."""
        flat = np.ascontiguousarray(obs.reshape(-1, obs.shape[-1]))
        unique, inverse = np.unique(flat, axis=0, return_inverse=True)
        rows = np.empty(len(unique), dtype=np.int64)
        for k, u in enumerate(unique):
            key = u.tobytes()
            row = self.rows.get(key)
            if row is None:
                if len(self.rows) >= self.limit:
                    raise ValueError(
                        f"{self.what}: more than {self.limit:,} distinct observations seen, so a table "
                        "cannot hold this state space; raise algo.max_states if it is finite, or use a "
                        "function approximator (iql, vdn, qmix, ippo, mappo)"
                    )
                row = self.rows[key] = len(self.rows)
            rows[k] = row
        return rows[inverse.reshape(-1)].reshape(obs.shape[:-1])

    def state(self) -> dict[str, Any]:
        """The rows as one byte tensor (checkpoints hold tensors and plain values only)."""
        keys = sorted(self.rows, key=self.rows.__getitem__)
        return {
            "keys": torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8)
            if keys
            else torch.zeros(0, dtype=torch.uint8),
            "key_bytes": len(keys[0]) if keys else 0,
        }

    def load(self, state: dict[str, Any]) -> None:
        raw, width = state["keys"].numpy().tobytes(), int(state["key_bytes"])
        self.rows = {raw[i : i + width]: k for k, i in enumerate(range(0, len(raw), width))} if width else {}

    def copy(self) -> StateIndex:
        out = StateIndex(self.limit, self.what)
        out.rows = dict(self.rows)
        return out


def table_values(t: dict[str, Any], rows: np.ndarray, copies: int, joint: bool) -> np.ndarray:
    """What each agent of a group (tables ``t``) acts on in its state: Q_i(s, .) or, for joint-action learners,
    EV_i(s, .) = sum over the others' joint actions of Q_i(s, ., a_-i) P_i(a_-i | s); ``(num_envs, n, na)``."""
    c = np.arange(rows.shape[0])[:, None] % copies  # copy e uses table e mod copies (any batch size)
    i = np.arange(t["n"])[None, :]
    q = t["q"][c, i, rows]  # (E, n, na, others)
    if not joint:
        return q[..., 0]
    model = t["model"][c, i, rows]  # (E, n, others)
    belief = model / model.sum(-1, keepdims=True)
    return np.einsum("enao,eno->ena", q, belief)


def tabular_act(
    tables: dict[str, dict[str, Any]],
    copies: int,
    joint: bool,
    obs: dict[str, np.ndarray],
    info: dict[str, Any],
    explore: bool,
    exploration: str,
    temperature: float,
    epsilon: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Greedy actions over ``table_values`` (masked actions never chosen), or when exploring a Boltzmann sample at
    ``temperature`` or an ``epsilon``-greedy choice."""
    actions = {}
    masks = info.get("action_mask")
    for g, t in tables.items():
        v = table_values(t, t["index"](obs[g]), copies, joint)
        mask = None if masks is None else masks[g]
        if mask is not None:
            v = np.where(mask, v, -np.inf)
        if not explore:
            actions[g] = v.argmax(-1)
        elif exploration == "boltzmann":
            logits = v / temperature
            actions[g] = (logits + rng.gumbel(size=logits.shape)).argmax(-1)  # Gumbel-max: a softmax sample
        else:
            greedy = v.argmax(-1)
            allowed = np.ones(v.shape, bool) if mask is None else mask
            uniform = (allowed * rng.random(v.shape)).argmax(-1)  # a uniformly random allowed action
            actions[g] = np.where(rng.random(greedy.shape) < epsilon, uniform, greedy)
    return actions


class TabularQ(LearnerBase):
    """Independent tabular Q-learners (``joint=False``) or joint-action learners (``joint=True``) for every group."""

    joint = False
    #: Off-policy Q-learning from each step's transition; no gradient losses. The exploration schedules follow the
    #: run's env-step counter (``self.progress``).
    capabilities = Capabilities("transitions")

    def __init__(self, env: MultiAgentEnv, config: TabularConfig, seed: int = 0) -> None:
        self.config = cfg = config
        self.num_envs = env.num_envs
        self.copies = env.num_envs if cfg.tables_per_copy else 1
        self.rng = np.random.default_rng(seed)
        self.temperature_schedule = exponential(cfg.temperature_start, cfg.temperature_decay, cfg.temperature_end)
        self.epsilon_schedule = linear(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_plays)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in env.groups}
        self.spaces = PolicySpaces.from_env(env)
        self.groups: dict[str, dict[str, Any]] = {}
        for g, ids in env.groups.items():
            act_space, obs_space = env.group_action_space(g), env.group_observation_space(g)
            if not isinstance(act_space, spaces.Discrete):
                raise ValueError(f"tabular learners need Discrete actions; group {g!r} has {act_space}")
            n, na = len(ids), int(act_space.n)
            known = space_size(obs_space)
            if known is not None and known > cfg.max_states:
                raise ValueError(
                    f"group {g!r}: the observation space {obs_space} has {known:,} states, more than "
                    f"algo.max_states={cfg.max_states:,}; a table cannot hold it"
                )
            states = min(known or cfg.max_states, cfg.max_states)
            others = na ** (n - 1) if self.joint else 1  # joint actions of the other agents
            entries = self.copies * n * states * na * others
            if entries > cfg.max_table_entries:
                raise ValueError(
                    f"group {g!r}: tables of {self.copies} copies x {n} agents x {states:,} states x "
                    f"{na} actions x {others:,} joint actions of the others = {entries:,} entries, "
                    f"more than algo.max_table_entries={cfg.max_table_entries:,}"
                )
            shape = (self.copies, n, states, na, others)
            self.groups[g] = {
                "index": StateIndex(states, f"group {g!r}"),
                "n": n,
                "na": na,
                "q": np.zeros(shape),
                # JAL beliefs: counts of the others' joint actions per state (uniform prior of one each), or the last
                "model": np.ones((self.copies, n, states, others)),
            }

    # ------------------------------------------------------------------------------------------------ acting
    def values(self, g: str, rows: np.ndarray) -> np.ndarray:
        """What each agent acts on in its state: Q_i(s, .) or EV_i(s, .), shaped ``(num_envs, n, na)``."""
        return table_values(self.groups[g], rows, self.copies, self.joint)

    def act(
        self, obs: dict[str, np.ndarray], state: Any, info: dict[str, Any], explore: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
        cfg = self.config
        actions = tabular_act(
            self.groups,
            self.copies,
            self.joint,
            obs,
            info,
            explore,
            cfg.exploration,
            self.temperature(),
            self.epsilon(),
            self.rng,
        )
        return actions, {g: {} for g in self.groups}

    def policy(self, seed: int | None = None) -> TabularPolicy:
        """The tables and beliefs as they are now, copied; exploring with the current temperature or ε."""
        tables = {
            g: {**t, "index": t["index"].copy(), "q": t["q"].copy(), "model": t["model"].copy()}
            for g, t in self.groups.items()
        }
        return TabularPolicy(
            self.spaces,
            tables,
            self.copies,
            self.joint,
            self.config.exploration,
            self.temperature(),
            self.epsilon(),
            seed,
        )

    @property
    def plays(self) -> int:
        """Steps taken by each copy in the run so far (the batch being learned from included): the clock of the
        exploration schedules."""
        return self.progress.env_steps // self.num_envs

    def temperature(self) -> float:
        return self.temperature_schedule(self.plays)

    def epsilon(self) -> float:
        return self.epsilon_schedule(self.plays)

    # ----------------------------------------------------------------------------------------------- learning
    def update(self, batch: Rollout) -> dict[str, float]:
        cfg = self.config
        td_abs = []
        for g, t in self.groups.items():
            obs, next_obs = batch.obs[g].numpy(), batch.next_obs[g].numpy()
            actions, rewards = batch.actions[g].numpy().astype(np.int64), batch.rewards[g].numpy()
            terminated, active = batch.terminated[g].numpy(), batch.active[g].numpy()
            for step in range(obs.shape[0]):  # the loop is over time; copies and agents are vectorised
                td_abs.append(
                    self._learn(
                        g,
                        t,
                        t["index"](obs[step]),
                        actions[step],
                        rewards[step],
                        t["index"](next_obs[step]),
                        terminated[step],
                        active[step],
                    )
                )
        out = {
            "loss/td_abs": float(np.mean(np.concatenate(td_abs))) if td_abs else 0.0,
            "train/states": float(sum(len(t["index"].rows) for t in self.groups.values())),
        }
        out["train/temperature" if cfg.exploration == "boltzmann" else "train/epsilon"] = (
            self.temperature() if cfg.exploration == "boltzmann" else self.epsilon()
        )
        return out

    def _learn(
        self,
        g: str,
        t: dict[str, Any],
        s: np.ndarray,
        a: np.ndarray,
        r: np.ndarray,
        s2: np.ndarray,
        terminated: np.ndarray,
        active: np.ndarray,
    ) -> np.ndarray:
        """One Q update for every (copy, agent) from arrays shaped ``(num_envs, n)``; returns |TD| of the active."""
        cfg, n, na = self.config, t["n"], t["na"]
        E = s.shape[0]
        c = np.broadcast_to((np.arange(E) % self.copies)[:, None], (E, n))
        i = np.broadcast_to(np.arange(n)[None, :], (E, n))
        o = self._others(a, na) if self.joint else np.zeros((E, n), np.int64)
        bootstrap = self.values(g, s2).max(-1)  # max over a' of Q_i(s', a') or EV_i(s', a')
        target = r + cfg.gamma * (1.0 - terminated) * bootstrap
        q = t["q"]
        td = target - q[c, i, s, a, o]
        keep = active.astype(bool)
        idx = (c[keep], i[keep], s[keep], a[keep], o[keep])
        if self.copies == E:  # one copy per table: every entry appears once
            q[idx] += cfg.lr * td[keep]
        else:  # copies share tables: move each entry by the mean TD error of the copies that hit it
            total, count = np.zeros_like(q), np.zeros_like(q)
            np.add.at(total, idx, td[keep])
            np.add.at(count, idx, 1.0)
            q += cfg.lr * total / np.maximum(count, 1.0)
        if self.joint:
            model = t["model"]
            if cfg.opponent_model == "counts":
                np.add.at(model, (c[keep], i[keep], s[keep], o[keep]), 1.0)
            else:  # the last joint action of the others in this state, as a one-hot belief
                model[c[keep], i[keep], s[keep]] = 0.0
                model[c[keep], i[keep], s[keep], o[keep]] = 1.0
        return np.abs(td[keep])

    @staticmethod
    def _others(a: np.ndarray, na: int) -> np.ndarray:
        """For every agent, the flat index of the other agents' joint action, ``(E, n)`` from ``(E, n)``."""
        E, n = a.shape
        out = np.zeros((E, n), np.int64)
        for i in range(n):  # n is the (small) number of agents in a table-sized game; a loop over columns
            others = np.delete(a, i, axis=1)
            out[:, i] = np.ravel_multi_index(others.T, (na,) * (n - 1)) if n > 1 else 0
        return out

    # ------------------------------------------------------------------------------------------ introspection
    def greedy_joint_action(self, g: str, obs: np.ndarray) -> np.ndarray:
        """Each agent's greedy action in the states ``obs`` ``(num_envs, n, obs_dim)`` — what the tests assert."""
        return self.values(g, self.groups[g]["index"](obs)).argmax(-1)

    # -------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "groups": {
                g: {"q": torch.from_numpy(t["q"]), "model": torch.from_numpy(t["model"]), **t["index"].state()}
                for g, t in self.groups.items()
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        for g, t in self.groups.items():
            saved = state["groups"][g]
            t["q"][...] = saved["q"].numpy()
            t["model"][...] = saved["model"].numpy()
            t["index"].load(saved)


class JointActionLearner(TabularQ):
    """Claus & Boutilier's joint-action learners: Q over joint actions, acting on expected value under a model."""

    joint = True


@register_policy_kind("tabular")
class TabularPolicy(PolicyBase):
    """The tables of an ``iql-tabular`` or ``jal`` learner, weights only: greedy over Q_i (independent learners)
    or over the expected value under the opponent model EV_i (joint-action learners). Observations never seen in
    training index fresh rows (Q 0, a uniform belief), as in the learner."""

    def __init__(
        self,
        spaces: PolicySpaces,
        tables: dict[str, dict[str, Any]],
        copies: int,
        joint: bool,
        exploration: str = "boltzmann",
        temperature: float = 1.0,
        epsilon: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.spaces, self.tables, self.copies, self.joint = spaces, tables, int(copies), bool(joint)
        self.exploration, self.temperature, self.epsilon = exploration, float(temperature), float(epsilon)
        self.extras_spec: dict[str, dict[str, tuple[int, ...]]] = {g: {} for g in spaces.groups}
        self.rng = np.random.default_rng(seed)  # exploration

    def act(
        self, obs: Obs, state: np.ndarray | None = None, info: Info | None = None, explore: bool = False
    ) -> tuple[Actions, Extras]:
        actions = tabular_act(
            self.tables,
            self.copies,
            self.joint,
            obs,
            info or {},
            explore,
            self.exploration,
            self.temperature,
            self.epsilon,
            self.rng,
        )
        return actions, {g: {} for g in self.tables}

    def greedy_joint_action(self, g: str, obs: np.ndarray) -> np.ndarray:
        """Each agent's greedy action in the states ``obs`` ``(num_envs, n, obs_dim)``."""
        t = self.tables[g]
        return table_values(t, t["index"](obs), self.copies, self.joint).argmax(-1)

    def policy_state(self) -> dict[str, Any]:
        groups = {}
        for g, t in self.tables.items():
            filled = len(t["index"].rows)  # rows past these were never updated: zeros (Q) and ones (counts)
            groups[g] = {
                "n": t["n"],
                "na": t["na"],
                "capacity": t["index"].limit,
                "q": torch.from_numpy(t["q"][:, :, :filled].copy()),
                "model": torch.from_numpy(t["model"][:, :, :filled].copy()),
                **t["index"].state(),
            }
        return {
            **self.header(),
            "copies": self.copies,
            "joint": self.joint,
            "exploration": self.exploration,
            "temperature": self.temperature,
            "epsilon": self.epsilon,
            "tables": groups,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], seed: int | None = None) -> TabularPolicy:
        tables = {}
        for g, saved in state["tables"].items():
            q, model = saved["q"].numpy(), saved["model"].numpy()
            filled, capacity = q.shape[2], int(saved["capacity"])
            full_q = np.zeros((*q.shape[:2], capacity, *q.shape[3:]))
            full_model = np.ones((*model.shape[:2], capacity, *model.shape[3:]))
            full_q[:, :, :filled], full_model[:, :, :filled] = q, model
            index = StateIndex(capacity, f"group {g!r}")
            index.load(saved)
            tables[g] = {"index": index, "n": int(saved["n"]), "na": int(saved["na"]), "q": full_q, "model": full_model}
        return cls(
            PolicySpaces.from_data(state["spaces"]),
            tables,
            state["copies"],
            state["joint"],
            state["exploration"],
            state["temperature"],
            state["epsilon"],
            seed,
        )
