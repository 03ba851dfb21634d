"""Candle math: Binance's kline rule, exact, and a pure function of the set of distinct trades.

A kline buckets trades by trade time ``T`` (UTC); open/close are the first/last trade by id; high/low;
volume = sum q; quote volume = sum p*q; taker-buy volumes sum the trades whose buyer was the taker
(``m`` false). Arithmetic is exact (polars Decimal; p*q at scale 16, so nothing is rounded).

Upserts stay exact under duplicates, reordering, splitting and redelivery because every candle keeps the
set of trade ids it holds: ``exclude_known`` drops trades already counted, ``merge`` adds a disjoint
part. A minute without trades between two traded minutes gets Binance's empty kline (``plan_empty_fill``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

import polars as pl

from tasks.core.models import (
    ZERO,
    Candle,
    IdRanges,
    Interval,
    empty_candle,
    normalize_ranges,
)
from tasks.core.trades import QUOTE

_GROUP = ("symbol", "open_time")
CandleKey = tuple[str, Interval, int]


def _sum_or_zero(expr: pl.Expr) -> pl.Expr:
    return expr.sum().fill_null(0)


def aggregate(trades: pl.DataFrame, interval: Interval = Interval.M1) -> list[Candle]:
    """Candles of distinct trades (symbol, trade_id, price, quantity, is_buyer_maker, trade_time)."""
    if trades.height == 0:
        return []
    frame = (
        trades.lazy()
        # The first row of each (symbol, trade id), as unique(keep="first") keeps, at a fraction of
        # its memory (no hash table keyed by the string column).
        .filter(pl.col("trade_id").is_first_distinct().over("symbol"))
        .with_columns(open_time=pl.col("trade_time") - pl.col("trade_time") % interval.ms)
        .sort("symbol", "trade_id")
        .with_columns(quote=pl.col("price").cast(QUOTE) * pl.col("quantity"))
    )
    taker = ~pl.col("is_buyer_maker")
    sums = frame.group_by(*_GROUP).agg(
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        _sum_or_zero(pl.col("quantity")).alias("volume"),
        _sum_or_zero(pl.col("quote")).alias("quote_volume"),
        pl.len().alias("trade_count"),
        _sum_or_zero(pl.col("quantity").filter(taker)).alias("taker_buy_volume"),
        _sum_or_zero(pl.col("quote").filter(taker)).alias("taker_buy_quote_volume"),
        pl.col("trade_id").min().alias("first_trade_id"),
        pl.col("trade_id").max().alias("last_trade_id"),
    )
    runs = (
        frame.with_columns(run=pl.col("trade_id") - pl.int_range(pl.len()).over(*_GROUP))
        .group_by(*_GROUP, "run")
        .agg(pl.col("trade_id").min().alias("lo"), pl.col("trade_id").max().alias("hi"))
        .group_by(*_GROUP)
        .agg(pl.struct("lo", "hi").alias("ranges"))
    )
    rows = sums.join(runs, on=list(_GROUP)).sort(*_GROUP).collect().iter_rows(named=True)
    return [
        Candle(
            symbol=r["symbol"],
            interval=interval,
            open_time=r["open_time"],
            open=r["open"],
            high=r["high"],
            low=r["low"],
            close=r["close"],
            volume=r["volume"],
            quote_volume=r["quote_volume"],
            trade_count=r["trade_count"],
            taker_buy_volume=r["taker_buy_volume"],
            taker_buy_quote_volume=r["taker_buy_quote_volume"],
            first_trade_id=r["first_trade_id"],
            last_trade_id=r["last_trade_id"],
            trade_ids=normalize_ranges([(x["lo"], x["hi"]) for x in r["ranges"]]),
        )
        for r in rows
    ]


def exclude_known(trades: pl.DataFrame, known: Iterable[Candle]) -> pl.DataFrame:
    """The trades whose (symbol, id) no known candle holds yet, in their original order."""
    ranges = [(c.symbol, lo, hi) for c in known for lo, hi in c.trade_ids]
    if not ranges or trades.height == 0:
        return trades
    table = pl.DataFrame(
        ranges,
        schema={"symbol": pl.String, "_lo": pl.Int64, "_hi": pl.Int64},
        orient="row",
    ).sort("_lo")
    # Match on the two key columns only and filter the frame once: copying whole rows (the raw
    # line included) to sort and join them costs more than the rest of the lookup.
    keys = trades.select("symbol", "trade_id").with_row_index("_row").sort("trade_id")
    # Both sides are sorted by the join key just above; polars cannot verify that when ``by`` is
    # given and would warn on every call.
    joined = keys.join_asof(
        table,
        left_on="trade_id",
        right_on="_lo",
        by="symbol",
        strategy="backward",
        check_sortedness=False,
    )
    held = joined.filter(pl.col("trade_id") <= pl.col("_hi")).get_column("_row")
    if held.len() == 0:
        return trades
    return trades.filter(pl.repeat(True, trades.height, eager=True).scatter(held, False))


def candle_keys(trades: pl.DataFrame, interval: Interval = Interval.M1) -> list[CandleKey]:
    """(symbol, interval, open time) of every candle the trades fall in."""
    opened = trades.select(
        "symbol", open_time=pl.col("trade_time") - pl.col("trade_time") % interval.ms
    ).unique(maintain_order=True)
    return [(symbol, interval, open_time) for symbol, open_time in opened.iter_rows()]


def in_candle(trades: pl.DataFrame, key: CandleKey) -> pl.DataFrame:
    """The trades that fall in the candle ``key``."""
    symbol, interval, open_time = key
    t = pl.col("trade_time")
    return trades.filter(
        (pl.col("symbol") == symbol) & (t >= open_time) & (t < open_time + interval.ms)
    )


def merge(existing: Candle | None, part: Candle) -> Candle:
    """Add ``part`` (trades disjoint from ``existing``'s) to the stored candle of the same interval."""
    if existing is None or existing.is_empty:
        return replace(part, version=existing.version if existing else 0)
    if (existing.symbol, existing.interval, existing.open_time) != (
        part.symbol,
        part.interval,
        part.open_time,
    ):
        raise ValueError("merge needs two parts of the same symbol, interval and open time")
    assert existing.first_trade_id is not None and existing.last_trade_id is not None
    assert part.first_trade_id is not None and part.last_trade_id is not None
    first = existing if existing.first_trade_id < part.first_trade_id else part
    last = existing if existing.last_trade_id > part.last_trade_id else part
    return replace(
        existing,
        open=first.open,
        high=max(existing.high, part.high),
        low=min(existing.low, part.low),
        close=last.close,
        volume=existing.volume + part.volume,
        quote_volume=existing.quote_volume + part.quote_volume,
        trade_count=existing.trade_count + part.trade_count,
        taker_buy_volume=existing.taker_buy_volume + part.taker_buy_volume,
        taker_buy_quote_volume=existing.taker_buy_quote_volume + part.taker_buy_quote_volume,
        first_trade_id=first.first_trade_id,
        last_trade_id=last.last_trade_id,
        trade_ids=normalize_ranges(existing.trade_ids + part.trade_ids),
    )


def plan_empty_fill(candles: list[Candle], limit: int) -> tuple[list[Candle], int]:
    """Empty klines to write between traded intervals of one symbol.

    ``candles`` are the stored (and just merged) candles of one symbol and interval over a window that
    starts at a stored candle (traded, or empty with the close it carries) and reaches the next traded
    one. Returns the empty candles that are missing or carry a stale close, and how many empty intervals
    were left unfilled because their run was longer than ``limit``.
    """
    ordered = sorted(candles, key=lambda c: c.open_time)
    by_time = {c.open_time: c for c in ordered}
    writes: list[Candle] = []
    skipped = 0
    close: Decimal | None = None
    previous: int | None = None
    for candle in ordered:
        if candle.is_empty and previous is not None:
            continue  # an existing empty kline inside a gap: checked when the gap is planned
        if close is not None and previous is not None:
            gap = range(previous + candle.interval.ms, candle.open_time, candle.interval.ms)
            if len(gap) > limit:
                skipped += len(gap)
            else:
                for t in gap:
                    want = empty_candle(candle.symbol, candle.interval, t, close)
                    have = by_time.get(t)
                    if have is None or (have.is_empty and _ohlc(have) != _ohlc(want)):
                        writes.append(want.with_version(have.version if have else 0))
        close, previous = candle.close, candle.open_time
    return writes, skipped


def _ohlc(c: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (c.open, c.high, c.low, c.close)


def id_ranges_text(ranges: IdRanges) -> str:
    """Compact text of inclusive id ranges: ``"5-9,12-12"``."""
    return ",".join(f"{lo}-{hi}" for lo, hi in ranges)


def parse_id_ranges(text: str) -> IdRanges:
    if not text:
        return ()
    pairs = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        pairs.append((int(lo), int(hi)))
    return normalize_ranges(pairs)


__all__ = [
    "ZERO",
    "aggregate",
    "candle_keys",
    "exclude_known",
    "id_ranges_text",
    "in_candle",
    "merge",
    "parse_id_ranges",
    "plan_empty_fill",
]
