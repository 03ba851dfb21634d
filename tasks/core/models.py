"""The market-data vocabulary shared by the producer and the flows.

Times are integers in UTC: milliseconds since the epoch for candle bounds (as Binance's klines), nanoseconds
for ``ts_event`` (when the trade happened) and ``ts_init`` (when candleflow first saw it).
Prices and sizes are exact ``Decimal``s from the edge on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from decimal import Decimal

ZERO = Decimal(0)


# Binance times (trade T, event E) at or above this are microseconds (Binance spot since 2025).
MICROS_THRESHOLD = 10**14


def to_ms(time: int) -> int:
    """A Binance time in ms, given in ms or in µs."""
    return time // 1000 if time >= MICROS_THRESHOLD else time


class Interval(enum.Enum):
    """A candle interval; the value is its name in DynamoDB keys (``BTCUSDT_1m``)."""

    M1 = "1m"
    H1 = "1h"
    D1 = "1d"

    @property
    def ms(self) -> int:
        return {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[self.value]

    def floor(self, time_ms: int) -> int:
        """Start of the interval containing ``time_ms``."""
        return time_ms - time_ms % self.ms

    @classmethod
    def parse(cls, text: str) -> Interval:
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(i.value for i in cls)
            raise ValueError(f"unknown interval {text!r}; use one of {names}") from None


IdRanges = tuple[tuple[int, int], ...]


def normalize_ranges(ranges: list[tuple[int, int]] | IdRanges) -> IdRanges:
    """Sort inclusive id ranges and merge the ones that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


# Binance's kline fields, in Binance's order, after the open time.
KLINE_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "first_trade_id",
    "last_trade_id",
)


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline, field for field as Binance's, plus the exact set of trade ids it holds.

    ``trade_ids`` (inclusive ranges) is what makes upserts idempotent: a trade whose id is already in
    it is never counted twice, whatever duplicates or redeliveries arrive. ``version`` is the
    optimistic-locking counter of the stored item (0 = not stored yet).
    """

    symbol: str
    interval: Interval
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    first_trade_id: int | None
    last_trade_id: int | None
    trade_ids: IdRanges = field(default=())
    version: int = 0

    @property
    def close_time(self) -> int:
        return self.open_time + self.interval.ms - 1

    @property
    def is_empty(self) -> bool:
        return self.trade_count == 0

    def with_version(self, version: int) -> Candle:
        return replace(self, version=version)


def empty_candle(
    symbol: str, interval: Interval, open_time: int, previous_close: Decimal
) -> Candle:
    """Binance's kline for an interval without trades: OHLC = previous close, zero volume."""
    p = previous_close
    return Candle(
        symbol,
        interval,
        open_time,
        p,
        p,
        p,
        p,
        ZERO,
        ZERO,
        0,
        ZERO,
        ZERO,
        None,
        None,
        (),
        0,
    )
