"""Gaps in the trade-id sequence: what the pipeline holds, what it lacks, and which candles that touches.

Binance trade ids are consecutive per symbol and rise with trade time, so the 1m candles' trade-id
sets (``Candle.trade_ids``) together say exactly which trades the pipeline holds. A missing id range
between two held ones is a gap: trades that a producer restart, a dropped connection or a lost
message never delivered. Its time window runs from the start of the minute holding the last trade
before it to the end of the minute holding the first trade after it; the missing trades happened
inside that window, so every candle overlapping it is incomplete until the gap is filled.

A scan walks the candles after a per-symbol watermark (the highest id it has accounted for). Holes
are only reported once they have *settled*: when the newest stored candle is ``settle_minutes``
past them, so batches that concurrent workers write out of order are not mistaken for gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tasks.core.models import Candle, Interval, normalize_ranges


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing trade ids ``first_id..last_id`` (inclusive) of ``symbol``, timed ``start_ms..end_ms``."""

    symbol: str
    first_id: int
    last_id: int
    start_ms: int
    end_ms: int

    @property
    def size(self) -> int:
        return self.last_id - self.first_id + 1

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        return self.start_ms <= end_ms and start_ms <= self.end_ms


@dataclass(frozen=True, slots=True)
class Watermark:
    """Every id up to ``last_id`` is held or recorded as a gap; it is in the minute ``open_time``."""

    symbol: str
    last_id: int
    open_time: int


def settled_through(newest_open_time: int, settle_minutes: int) -> int:
    """Latest minute a scan may look at, given the newest stored minute of the symbol."""
    return newest_open_time - settle_minutes * Interval.M1.ms


def _pieces(candles: Iterable[Candle]) -> list[tuple[int, int, int]]:
    """Every held id range with the open time of its minute, by first id."""
    return sorted((lo, hi, c.open_time) for c in candles for lo, hi in c.trade_ids)


def scan(
    symbol: str,
    candles: Iterable[Candle],
    watermark: Watermark | None,
    through_ms: int,
) -> tuple[list[Gap], Watermark | None]:
    """Gaps among ``candles`` (1m, from the watermark's minute on) up to the minute ``through_ms``.

    Returns the new gaps and the advanced watermark (the highest id seen). Without a watermark the
    first held id starts the sequence: ids before the first trade ever ingested are no gap.
    """
    gaps: list[Gap] = []
    cursor = watermark
    for lo, hi, open_time in _pieces(c for c in candles if c.open_time <= through_ms):
        if cursor is None:
            cursor = Watermark(symbol, hi, open_time)
            continue
        if hi <= cursor.last_id:
            continue
        if lo > cursor.last_id + 1:
            gaps.append(
                Gap(
                    symbol,
                    cursor.last_id + 1,
                    lo - 1,
                    cursor.open_time,
                    open_time + Interval.M1.ms - 1,
                )
            )
        cursor = Watermark(symbol, hi, open_time)
    return gaps, cursor


def remaining(gap: Gap, candles: Iterable[Candle]) -> list[Gap]:
    """What is still missing of ``gap`` given the 1m candles of its window (late trades, backfill).

    Each remaining part gets the tighter window its neighbours now allow.
    """
    pieces = _pieces(candles)
    held = normalize_ranges([(lo, hi) for lo, hi, _ in pieces])
    minute_of: dict[int, int] = {}
    for lo, hi, open_time in pieces:
        minute_of[lo], minute_of[hi] = open_time, open_time
    holes: list[tuple[int, int]] = []
    next_missing = gap.first_id
    for lo, hi in held:
        if hi < next_missing or lo > gap.last_id:
            continue
        if lo > next_missing:
            holes.append((next_missing, lo - 1))
        next_missing = hi + 1
    if next_missing <= gap.last_id:
        holes.append((next_missing, gap.last_id))
    # A hole's neighbours (a - 1, b + 1) end and start held ranges, so they are in ``minute_of``
    # whenever the candles read cover them.
    return [
        Gap(
            gap.symbol,
            a,
            b,
            minute_of.get(a - 1, gap.start_ms),
            minute_of[b + 1] + Interval.M1.ms - 1 if b + 1 in minute_of else gap.end_ms,
        )
        for a, b in holes
    ]


def is_incomplete(candle: Candle, gaps: Iterable[Gap]) -> bool:
    """Whether an open gap of the candle's symbol overlaps it (any interval)."""
    return any(
        g.symbol == candle.symbol and g.overlaps(candle.open_time, candle.close_time) for g in gaps
    )


@dataclass(frozen=True, slots=True)
class GapRecord:
    """A gap as stored: open until every id of it is held, then filled (and kept, for the record)."""

    gap: Gap
    detected_ms: int
    filled_ms: int | None = None

    @property
    def is_open(self) -> bool:
        return self.filled_ms is None
