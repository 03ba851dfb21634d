"""Waits between retries (reconnecting to Binance, resending to SQS) that grow but never stampede."""

from __future__ import annotations

import random
from dataclasses import dataclass

_MAX_EXPONENT = 60  # 2**60 times any sane base is past every cap; avoids float overflow


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": the n-th wait is in [c/2, c], c = min(cap, base * 2**n)."""

    base_s: float
    cap_s: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        ceiling = min(self.cap_s, self.base_s * float(2**exponent))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
