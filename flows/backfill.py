"""backfill: repair a window of candles, for chosen symbols, from the lake and from Binance.

Per symbol: fetch the trades of the open gaps in the window from Binance REST (rate-limited) and
write them to the lake like live trades -> read the window's trades back from the lake (the source
of truth) -> make the stored 1m candles equal them -> empty klines -> close the gaps now filled. Then
for all symbols: roll the window's 1h and 1d candles up again and rewrite the lake objects of what changed.
Running it twice leaves the same data: every step is a versioned or content-addressed write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.rollup_candles import rollup_candles
from tasks.annotations import as_is
from tasks.backfill import (
    ensure_rate_limit,
    fetch_gap_trades,
    read_lake,
    rebuild_candles,
    write_trades,
)
from tasks.candle_writes import fill_empty_candles, mark_rollups_dirty
from tasks.catalog import export_candles, register_partitions
from tasks.context import store_context
from tasks.core.candle_lake import candle_spans
from tasks.core.keys import iso_millis, iso_time
from tasks.core.models import Candle, Interval
from tasks.gaps import gap_table, now_ms, open_gaps, recheck_gaps
from tasks.rollup import time_window
from tasks.settings import Settings


@dataclass(frozen=True)
class BackfillReport:
    start_ms: int
    end_ms: int
    fetched: dict[str, int] = field(default_factory=dict)
    rebuilt: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    still_open: int = 0
    rollup: str = ""

    def summary(self) -> str:
        per = ", ".join(
            f"{s}: {self.fetched.get(s, 0)} fetched, {self.rebuilt[s]} minutes rebuilt "
            f"({self.written.get(s, 0)} written)"
            for s in self.rebuilt
        )
        return (
            f"backfill {iso_millis(self.start_ms)} .. {iso_millis(self.end_ms)}: {per}; "
            f"{self.still_open} gap(s) still open; rollup: {self.rollup}"
        )


@flow(name="backfill")
def backfill(
    start: str,
    end: str | None = None,
    symbols: list[str] | None = None,
    fetch_missing: bool = True,
) -> BackfillReport:
    """Rebuild ``start``..``end`` (ISO-8601, UTC when no zone is given; ``end`` defaults to now)
    for ``symbols`` (default: all), fetching the trades of open gaps from Binance first."""
    logger = get_run_logger()
    settings = Settings()
    lo, hi = time_window(start, end, now_ms(), "backfill")
    ctx = store_context(settings)
    chosen = symbols or settings.symbols
    gaps = (
        [r.gap for r in open_gaps(ctx, chosen) if r.gap.overlaps(lo, hi)] if fetch_missing else []
    )
    # Whole minutes, widened to the windows of the gaps it fills (their trades may lie outside).
    lo = Interval.M1.floor(min([lo, *(g.start_ms for g in gaps)]))
    hi = Interval.M1.floor(max([hi, *(g.end_ms for g in gaps)])) + Interval.M1.ms - 1
    fetched: dict[str, int] = {}
    if gaps:
        ensure_rate_limit(settings.binance_weight_per_minute)
        trades = fetch_gap_trades(ctx, gaps, settings.gap_fill_max_trades)
        register_partitions(ctx, write_trades(ctx, trades))
        if trades.height:
            fetched = dict(trades.group_by("symbol").len().iter_rows())
    rebuilt: dict[str, int] = {}
    written: dict[str, int] = {}
    changed: list[Candle] = []
    for symbol in chosen:
        report = rebuild_candles(ctx, symbol, lo, hi, read_lake(ctx, symbol, lo, hi))
        if report.written:
            empty = fill_empty_candles(ctx, as_is(list(report.written)), as_is(report.known))
            changed += [*report.written, *empty]
            mark_rollups_dirty(ctx, as_is(list(report.written)), {})
        rebuilt[symbol], written[symbol] = report.minutes, len(report.written)
        recheck_gaps(ctx, symbol, now_ms())
    # The rollup subflow rewrites the lake objects of the 1h/1d candles it changes; these are the
    # 1m ones. Unchanged candles keep their objects, so a re-run writes nothing.
    rolled = rollup_candles("1h", iso_time(lo), iso_time(hi), chosen)
    export_candles(ctx, as_is(candle_spans(changed)))
    remaining = [r for r in open_gaps(ctx, chosen) if r.gap.overlaps(lo, hi)]
    result = BackfillReport(lo, hi, fetched, rebuilt, written, len(remaining), rolled.summary())
    logger.info("%s", result.summary())
    create_markdown_artifact(
        key="backfill-report",
        markdown="\n".join([f"**backfill**: {result.summary()}", "", *gap_table(remaining)])
        if remaining
        else f"**backfill**: {result.summary()}",
        description="backfill",
    )
    return result
