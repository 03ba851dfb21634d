"""What the REST clients (Binance, BTCMarkets) share: the rate-limit hook default, Retry-After, backoff."""

from __future__ import annotations

import random

import httpx


def no_limit(weight: int) -> None:
    """The default ``before_request`` hook: no rate limit of the caller's."""


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, None when absent or not a non-negative number."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half to all of ``min(cap, base * 2**(attempt - 1))``."""
    ceiling = min(cap_s, base_s * 2.0 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * rng.random())
