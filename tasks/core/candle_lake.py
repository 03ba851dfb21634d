"""Candles as lake objects: one Parquet object per market and span, rebuilt whole on every change.

Candles change after they are first written (late trades, empty klines that later get trades), so an
object's key names only *which* candles it holds, never their content: a rewrite of the same span
replaces the old object in place. A 1m object holds one UTC hour of a market (60 rows at most); a 1h or
1d object holds one UTC day. The caller passes every stored candle of a span (read back from DynamoDB),
so the object is complete whatever changed::

    candles/interval=1m/symbol=BTCUSDT/date=2024-08-08/BTCUSDT-1m-20240808T23.parquet
    candles/interval=1h/symbol=BTCUSDT/date=2024-08-08/BTCUSDT-1h-20240808.parquet

``interval``, ``symbol`` and ``date`` are Hive partition columns, not stored in the files.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from tasks.core.keys import utc
from tasks.core.lake import LakeObject
from tasks.core.models import Candle, Interval
from tasks.core.trades import PRICE, QUOTE

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CANDLE_PARTITION_KEYS = ("interval", "symbol", "date")
_TIME = pl.Datetime("ms", "UTC")
CANDLES_COLUMNS: dict[str, pl.DataType] = {
    "open_time": _TIME,
    "close_time": _TIME,
    "open": PRICE,
    "high": PRICE,
    "low": PRICE,
    "close": PRICE,
    "volume": PRICE,
    "quote_volume": QUOTE,
    "trade_count": pl.Int64(),
    "taker_buy_volume": PRICE,
    "taker_buy_quote_volume": QUOTE,
    "first_trade_id": pl.Int64(),
    "last_trade_id": pl.Int64(),
}


def span_ms(interval: Interval) -> int:
    """How much time one candle object covers: an hour of 1m candles, a day of 1h or 1d candles."""
    return HOUR_MS if interval is Interval.M1 else DAY_MS


@dataclass(frozen=True, slots=True, order=True)
class CandleSpan:
    """The candles of one market and interval with ``start_ms <= open_time < end_ms``: one object."""

    symbol: str
    interval: Interval
    start_ms: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + span_ms(self.interval)

    @property
    def last_open_time(self) -> int:
        return self.end_ms - self.interval.ms


def span_of(symbol: str, interval: Interval, open_time: int) -> CandleSpan:
    size = span_ms(interval)
    return CandleSpan(symbol, interval, open_time - open_time % size)


def candle_spans(candles: Iterable[Candle]) -> list[CandleSpan]:
    """The distinct spans the candles fall in, sorted: what to rebuild after writing them."""
    return sorted({span_of(c.symbol, c.interval, c.open_time) for c in candles}, key=_span_order)


def spans_between(symbol: str, interval: Interval, start_ms: int, end_ms: int) -> list[CandleSpan]:
    """Every span of a market touching open times ``start_ms..end_ms`` (inclusive)."""
    first = span_of(symbol, interval, start_ms)
    size = span_ms(interval)
    return [CandleSpan(symbol, interval, t) for t in range(first.start_ms, end_ms + 1, size)]


def _span_order(span: CandleSpan) -> tuple[str, str, int]:
    return (span.symbol, span.interval.value, span.start_ms)


def candle_key(prefix: str, span: CandleSpan) -> str:
    """Key of a span's object: a pure function of the span, so a rebuild overwrites it."""
    moment = utc(span.start_ms)
    stamp = f"{moment:%Y%m%dT%H}" if span.interval is Interval.M1 else f"{moment:%Y%m%d}"
    i, s = span.interval.value, span.symbol
    return f"{prefix}/interval={i}/symbol={s}/date={moment:%Y-%m-%d}/{s}-{i}-{stamp}.parquet"


def candles_frame(candles: Iterable[Candle]) -> pl.DataFrame:
    """The Parquet columns of candles, in open-time order (exact decimals, UTC timestamps)."""
    rows = sorted(candles, key=lambda c: c.open_time)
    return pl.DataFrame(
        {name: [getattr(c, name) for c in rows] for name in CANDLES_COLUMNS},
        schema={
            name: pl.Int64 if dtype == _TIME else dtype for name, dtype in CANDLES_COLUMNS.items()
        },
    ).with_columns(pl.col("open_time", "close_time").cast(_TIME))


def candle_object(prefix: str, span: CandleSpan, candles: Iterable[Candle]) -> LakeObject:
    """The object of one span from *all* its stored candles; candles outside the span are an error."""
    held = list(candles)
    stray = [
        c
        for c in held
        if (c.symbol, c.interval) != (span.symbol, span.interval)
        or not span.start_ms <= c.open_time < span.end_ms
    ]
    if stray:
        raise ValueError(f"{len(stray)} candle(s) outside {span}, e.g. {stray[0]}")
    buffer = io.BytesIO()
    candles_frame(held).write_parquet(buffer, compression="zstd", statistics=True)
    return LakeObject(candle_key(prefix, span), buffer.getvalue(), "application/vnd.apache.parquet")
