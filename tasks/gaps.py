"""Prefect tasks finding gaps in each symbol's trade ids and closing the ones that got filled.

The math lives in ``tasks.core.gaps``; the records in ``tasks.aws.gap_records``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aws import dynamodb, gap_records
from tasks.context import Store
from tasks.core.gaps import Gap, GapRecord, remaining, scan, settled_through
from tasks.core.keys import iso_millis
from tasks.core.models import Interval


@dataclass(frozen=True)
class GapReport:
    found: tuple[Gap, ...] = ()
    filled: tuple[Gap, ...] = ()
    open: tuple[GapRecord, ...] = ()
    scanned_candles: int = 0

    def __add__(self, other: GapReport) -> GapReport:
        return GapReport(
            self.found + other.found,
            self.filled + other.filled,
            self.open + other.open,
            self.scanned_candles + other.scanned_candles,
        )

    def summary(self) -> str:
        missing = sum(r.gap.size for r in self.open)
        return (
            f"{len(self.found)} new gap(s), {len(self.filled)} filled, {len(self.open)} open "
            f"({missing} trade(s) missing); {self.scanned_candles} candles scanned"
        )

    def markdown(self) -> str:
        lines = [f"**detect-gaps**: {self.summary()}"]
        if self.open:
            lines += ["", *gap_table(self.open)]
        return "\n".join(lines)


def gap_table(gaps: tuple[GapRecord, ...] | list[GapRecord]) -> list[str]:
    """Markdown rows: symbol, missing ids, count, time window, state."""
    rows = [
        "| symbol | missing trade ids | trades | window (UTC) | state |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for r in gaps:
        g = r.gap
        state = "open" if r.is_open else f"filled {iso_millis(r.filled_ms or 0)}"
        rows.append(
            f"| {g.symbol} | {g.first_id}-{g.last_id} | {g.size} | "
            f"{iso_millis(g.start_ms)} .. {iso_millis(g.end_ms)} | {state} |"
        )
    return rows


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def scan_gaps(ctx: Store, symbol: str, detected_ms: int) -> GapReport:
    """Scan the symbol's settled 1m candles after its watermark; record the gaps; advance it."""
    client = ctx.clients.dynamodb
    newest = next(
        dynamodb.query_candles(
            client, ctx.spec.table.name, symbol, Interval.M1, descending=True, limit=1
        ),
        None,
    )
    if newest is None:
        return GapReport()
    through = settled_through(newest.open_time, ctx.settings.gap_settle_minutes)
    mark = gap_records.watermark(client, ctx.spec.table.name, symbol)
    start = None if mark is None else mark.open_time
    if start is not None and start > through:
        return GapReport()
    candles = list(
        dynamodb.query_candles(client, ctx.spec.table.name, symbol, Interval.M1, start, through)
    )
    gaps, advanced = scan(symbol, candles, mark, through)
    gap_records.record_new(client, ctx.spec.table.name, gaps, detected_ms)
    if advanced is not None and advanced != mark:
        gap_records.advance_watermark(client, ctx.spec.table.name, advanced)
    logger = get_run_logger()
    for g in gaps:
        logger.warning(
            "%s: gap of %d trade(s), ids %d-%d, between %s and %s; the candles in that window are "
            "incomplete until it is filled (backfill)",
            symbol,
            g.size,
            g.first_id,
            g.last_id,
            iso_millis(g.start_ms),
            iso_millis(g.end_ms),
        )
    return GapReport(found=tuple(gaps), scanned_candles=len(candles))


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def recheck_gaps(ctx: Store, symbol: str, checked_ms: int) -> GapReport:
    """Re-read the candles of each open gap; close or shrink the gaps whose trades arrived."""
    return _recheck(ctx, symbol, checked_ms)


def _recheck(ctx: Store, symbol: str, checked_ms: int) -> GapReport:
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    filled: list[Gap] = []
    still: list[GapRecord] = []
    for record in gap_records.records(client, table, symbol, open_only=True):
        gap = record.gap
        candles = dynamodb.query_candles(
            client, table, symbol, Interval.M1, Interval.M1.floor(gap.start_ms), gap.end_ms
        )
        parts = remaining(gap, candles)
        if parts == [gap]:
            still.append(record)
            continue
        for part in parts:  # a part starting at the gap's first id replaces its record
            gap_records.put(client, table, GapRecord(part, record.detected_ms))
            still.append(GapRecord(part, record.detected_ms))
        if all(p.first_id != gap.first_id for p in parts):
            gap_records.put(client, table, GapRecord(gap, record.detected_ms, checked_ms))
        filled.append(gap)
    if filled:
        get_run_logger().info(
            "%s: %d gap(s) filled or narrowed: %s",
            symbol,
            len(filled),
            ", ".join(f"{g.first_id}-{g.last_id}" for g in filled[:10]),
        )
    return GapReport(filled=tuple(filled), open=tuple(still))


def open_gaps(ctx: Store, symbols: list[str]) -> list[GapRecord]:
    return [
        r
        for s in symbols
        for r in gap_records.records(ctx.clients.dynamodb, ctx.spec.table.name, s, open_only=True)
    ]
