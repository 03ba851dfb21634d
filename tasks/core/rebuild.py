"""Rebuilding 1m candles from the lake's trades: what to write over what is stored.

The lake is the source of truth: a rebuilt minute is the aggregate of every distinct trade the lake
holds for it. The lake holds every trade a stored candle counts (the ingest writes the lake first), so
a stored candle normally is, or is a subset of, its rebuilt one. If the lake lacks some of a stored
candle's trades (objects deleted by hand, a lifecycle rule), the rebuild never drops them: it keeps the
stored candle and adds the lake's other trades to it, and reports the minute.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tasks.core.candles import CandleKey, aggregate, exclude_known, in_candle, merge
from tasks.core.models import Candle, Interval, normalize_ranges
from tasks.core.rollup import same_kline


@dataclass(frozen=True, slots=True)
class RebuildPlan:
    """Candles to write (each with the stored version it replaces) and the minutes the lake lacks."""

    writes: list[Candle]
    unchanged: int
    lake_lacks: list[CandleKey]


def lake_trades(parquet: pl.DataFrame, symbol: str) -> pl.DataFrame:
    """A partition's Parquet rows (``tasks.core.lake.parquet_frame``) as candle-math input."""
    return parquet.select(
        pl.lit(symbol).alias("symbol"),
        "trade_id",
        "price",
        "quantity",
        "is_buyer_maker",
        pl.col("trade_time").dt.epoch("ms").alias("trade_time"),
    )


def holds(outer: Candle, inner: Candle) -> bool:
    """Whether every trade id of ``inner`` is in ``outer``."""
    return normalize_ranges(outer.trade_ids + inner.trade_ids) == outer.trade_ids


def plan_rebuild(trades: pl.DataFrame, stored: dict[CandleKey, Candle]) -> RebuildPlan:
    """Compare the 1m candles of ``trades`` (one window) with the stored ones of the same minutes.

    ``stored`` holds the stored candles of the window (read before the trades, so a concurrent
    write makes the versioned write fail and the rebuild re-run).
    """
    writes: list[Candle] = []
    unchanged = 0
    lacks: list[CandleKey] = []
    rebuilt = aggregate(trades, Interval.M1)
    seen = {(c.symbol, c.interval, c.open_time) for c in rebuilt}
    # Traded minutes of which the lake holds nothing at all stay as they are stored.
    lacks += sorted(k for k, c in stored.items() if not c.is_empty and k not in seen)
    for candle in rebuilt:
        key = (candle.symbol, candle.interval, candle.open_time)
        have = stored.get(key)
        if have is None or have.is_empty or holds(candle, have):
            want = candle.with_version(have.version if have else 0)
        else:
            lacks.append(key)
            extra = aggregate(exclude_known(in_candle(trades, key), [have]))
            want = merge(have, extra[0]) if extra else have
        if have is not None and same_kline(want, have):
            unchanged += 1
        else:
            writes.append(want)
    return RebuildPlan(writes, unchanged, lacks)
