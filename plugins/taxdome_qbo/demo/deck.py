"""Seeded draws that make rare cases certain: a deck is dealt in shuffled rounds, each card once a round."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Deck(Generic[T]):
    """Draw values with fixed proportions; a value with one card out of 25 shows up in every 25 draws.

    Plain weighted sampling would leave a 1-in-25 case out of a small export for some seeds; a deck keeps the
    same proportions and makes "every scenario is present" hold for any seed once enough draws are made.
    """

    def __init__(self, rng: random.Random, cards: Iterable[tuple[T, int]]) -> None:
        self._rng = rng
        self._cards = [value for value, copies in cards for _ in range(copies)]
        self._next = len(self._cards)

    def draw(self) -> T:
        if self._next == len(self._cards):
            self._rng.shuffle(self._cards)
            self._next = 0
        card = self._cards[self._next]
        self._next += 1
        return card
