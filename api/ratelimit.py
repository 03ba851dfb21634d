"""A per-client request budget over a sliding window, like the seed's WAF rate-based rule.

Pure: the caller passes the time, so the rule can be tested without waiting. Memory stays bounded:
clients idle for a whole window are forgotten.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    limit: int
    window_s: float
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _last_sweep: float = 0.0

    def check(self, client: str, now: float) -> float | None:
        """Count one request of ``client`` at ``now``: None if allowed, else seconds to wait."""
        if now - self._last_sweep > self.window_s:
            self._sweep(now)
        times = self._seen.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return max(times[0] + self.window_s - now, 0.001)
        times.append(now)
        return None

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        idle = [c for c, t in self._seen.items() if not t or t[-1] <= now - self.window_s]
        for client in idle:
            del self._seen[client]

    @property
    def clients(self) -> int:
        return len(self._seen)
