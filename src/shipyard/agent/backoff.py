"""Exponential backoff with jitter: how long the agent waits before it tries the controller again."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of base * 2^n capped at `cap`, each drawn from the upper half of that range.

    The jitter keeps a fleet of agents that lost the controller at the same moment from all
    calling it again at the same moment when it comes back.
    """

    base: float = 0.5
    cap: float = 30.0
    draw: Callable[[float, float], float] = field(default=random.uniform)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return self.draw(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
