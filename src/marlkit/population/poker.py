"""Kuhn poker and Leduc hold'em as ``efg.GameRules``, with OpenSpiel's rules, action numbers, information-state
strings and information-state tensors, so a policy maps to OpenSpiel's ``TabularPolicy`` row by row."""

from __future__ import annotations

import functools
from typing import NamedTuple

from marlkit.population.efg import CHANCE, ExtensiveGame, build_game


class _Kuhn:
    """Kuhn poker (Kuhn 1950) as OpenSpiel plays it: cards 0 < 1 < 2, one dealt to each player, ante 1; player 0
    acts first; action 0 passes (checks or folds), 1 bets 1 (or calls)."""

    name = "kuhn_poker"
    num_actions = 2

    def initial(self) -> tuple[int, ...]:
        return ()

    def is_terminal(self, s: tuple[int, ...]) -> bool:
        bets = s[2:]
        return len(bets) >= 2 and (bets[-2:] != (0, 1) or len(bets) == 3)

    def returns(self, s: tuple[int, ...]) -> float:
        cards, bets = s[:2], s[2:]
        if bets in ((0, 1, 0), (1, 0)):  # the player facing the bet folded
            return 1.0 if bets == (1, 0) else -1.0
        stake = 2.0 if 1 in bets else 1.0
        return stake if cards[0] > cards[1] else -stake

    def player(self, s: tuple[int, ...]) -> int:
        return CHANCE if len(s) < 2 else (len(s) - 2) % 2

    def chance_outcomes(self, s: tuple[int, ...]) -> list[tuple[int, float]]:
        left = [c for c in range(3) if c not in s]
        return [(c, 1.0 / len(left)) for c in left]

    def legal_actions(self, s: tuple[int, ...]) -> list[int]:
        return [0, 1]

    def infostate(self, s: tuple[int, ...]) -> str:
        return str(s[self.player(s)]) + "".join("pb"[a] for a in s[2:])

    def features(self, s: tuple[int, ...]) -> list[float]:
        """OpenSpiel's information-state tensor: the player (2), its card (3), then a pass and a bet bit per move."""
        p, x = self.player(s), [0.0] * 11
        x[p] = x[2 + s[p]] = 1.0
        for i, a in enumerate(s[2:]):
            x[5 + 2 * i + a] = 1.0
        return x

    def apply(self, s: tuple[int, ...], a: int) -> tuple[int, ...]:
        return (*s, a)


class _LeducState(NamedTuple):
    cards: tuple[int, ...]  # player 0's, player 1's, then the public card once dealt
    rounds: tuple[tuple[int, ...], ...]  # the actions of each round so far
    folded: bool


class _Leduc:
    """Leduc hold'em (Southey et al. 2005) as OpenSpiel plays it: six cards (two suits of three ranks; card ``c``
    has rank ``c // 2``), ante 1, one private card each, a public card after the first betting round. Raises are 2
    in the first round and 4 in the second, at most two per round; player 0 opens both rounds. Actions: 0 fold,
    1 call (or check), 2 raise. A pair with the public card beats no pair, then the higher rank wins; equal ranks
    split the pot."""

    name = "leduc_poker"
    num_actions = 3
    FOLD, CALL, RAISE = 0, 1, 2

    def initial(self) -> _LeducState:
        return _LeducState((), ((),), False)

    @staticmethod
    def _round_over(actions: tuple[int, ...]) -> bool:
        return len(actions) >= 2 and actions[-1] == 1

    def is_terminal(self, s: _LeducState) -> bool:
        return s.folded or (len(s.rounds) == 2 and self._round_over(s.rounds[1]))

    def _contributions(self, s: _LeducState) -> list[int]:
        spent = [1, 1]
        for r, actions in enumerate(s.rounds):
            size = 2 if r == 0 else 4
            for i, a in enumerate(actions):
                p = i % 2
                if a == self.CALL:
                    spent[p] = spent[1 - p]
                elif a == self.RAISE:
                    spent[p] = spent[1 - p] + size
        return spent

    def returns(self, s: _LeducState) -> float:
        spent = self._contributions(s)
        if s.folded:
            loser = (len(s.rounds[-1]) - 1) % 2
            return -spent[0] if loser == 0 else float(spent[1])
        ranks = [self._hand(s.cards[p], s.cards[2]) for p in (0, 1)]
        return 0.0 if ranks[0] == ranks[1] else (float(spent[1]) if ranks[0] > ranks[1] else -float(spent[0]))

    @staticmethod
    def _hand(private: int, public: int) -> int:
        return 10 + private // 2 if private // 2 == public // 2 else private // 2

    def player(self, s: _LeducState) -> int:
        if len(s.cards) < 2 or (len(s.cards) == 2 and self._round_over(s.rounds[0])):
            return CHANCE
        return len(s.rounds[-1]) % 2

    def chance_outcomes(self, s: _LeducState) -> list[tuple[int, float]]:
        left = [c for c in range(6) if c not in s.cards]
        return [(c, 1.0 / len(left)) for c in left]

    def legal_actions(self, s: _LeducState) -> list[int]:
        actions = s.rounds[-1]
        facing = bool(actions) and actions[-1] == self.RAISE
        raises = actions.count(self.RAISE)
        return ([self.FOLD] if facing else []) + [self.CALL] + ([self.RAISE] if raises < 2 else [])

    def infostate(self, s: _LeducState) -> str:
        p = self.player(s)
        spent = self._contributions(s)
        public = f"[Public: {s.cards[2]}]" if len(s.cards) == 3 else ""
        rounds = [" ".join(map(str, r)) for r in s.rounds] + [""] * (2 - len(s.rounds))
        return (
            f"[Observer: {p}][Private: {s.cards[p]}][Round {len(s.rounds)}][Player: {p}][Pot: {sum(spent)}]"
            f"[Money: {100 - spent[0]} {100 - spent[1]}]{public}[Round1: {rounds[0]}][Round2: {rounds[1]}]"
        )

    def features(self, s: _LeducState) -> list[float]:
        """OpenSpiel's information-state tensor: the player (2), its card (6), the public card (6), then a call and
        a raise bit for each of up to four moves of each round (16)."""
        p, x = self.player(s), [0.0] * 30
        x[p] = x[2 + s.cards[p]] = 1.0
        if len(s.cards) == 3:
            x[8 + s.cards[2]] = 1.0
        for r, actions in enumerate(s.rounds):
            for i, a in enumerate(actions):
                x[14 + 8 * r + 2 * i + (a - 1)] = 1.0
        return x

    def apply(self, s: _LeducState, a: int) -> _LeducState:
        if self.player(s) == CHANCE:
            return _LeducState((*s.cards, a), s.rounds + (((),) if len(s.cards) == 2 else ()), False)
        rounds = (*s.rounds[:-1], (*s.rounds[-1], a))
        return _LeducState(s.cards, rounds, a == self.FOLD)


@functools.cache
def kuhn_poker() -> ExtensiveGame:
    """Kuhn poker: 3 cards, ante 1, one bet of 1; 12 information states (58 nodes). Its value for player 0 is
    −1/18."""
    return build_game(_Kuhn())


@functools.cache
def leduc_poker() -> ExtensiveGame:
    """Leduc hold'em: 6 cards, two betting rounds (raises of 2 then 4, at most two per round); 936 information
    states."""
    return build_game(_Leduc())


#: The games known by name.
GAMES = {"kuhn_poker": kuhn_poker, "leduc_poker": leduc_poker}
