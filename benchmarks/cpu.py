"""How much CPU other processes took while the benchmark was timing something (Linux ``/proc``).

The machine may be shared: a test suite running next to the benchmark inflates every wall time. The
meter counts the busy CPU time of the whole machine over each timed window and subtracts what the
benchmark's own processes used (this process, plus every process in the sessions of the services and
workers it started: each is started as a session leader), so the report can say how contended the
measurement was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")


def _ticks() -> float:
    return float(os.sysconf("SC_CLK_TCK"))


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (0.0 where /proc/stat does not exist)."""
    try:
        fields = (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _ticks()


def sessions_cpu_s(sessions: set[int]) -> float:
    """CPU seconds used so far by the live processes of the given sessions."""
    total = 0
    for stat in _PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        after = text[text.rindex(")") + 2 :].split()
        # after[0] is field 3 (state): session is field 6, utime and stime fields 14 and 15
        if int(after[3]) in sessions:
            total += int(after[11]) + int(after[12])
    return total / _ticks()


@dataclass
class CpuMeter:
    """Accumulates the wall time of timed windows and the CPU other processes used during them."""

    sessions: set[int] = field(default_factory=set)
    wall_s: float = 0.0
    foreign_cpu_s: float = 0.0

    def _ours(self) -> float:
        return time.process_time() + sessions_cpu_s(self.sessions)

    @contextmanager
    def window(self) -> Iterator[None]:
        busy, ours, began = machine_busy_s(), self._ours(), time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - began
            spent = (machine_busy_s() - busy) - (self._ours() - ours)
            self.foreign_cpu_s += max(0.0, spent)

    @property
    def foreign_share(self) -> float:
        """Other processes' CPU as a share of what the machine had during the windows."""
        capacity = self.wall_s * (os.cpu_count() or 1)
        return self.foreign_cpu_s / capacity if capacity else 0.0
