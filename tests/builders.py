"""Builders with defaults for test data: ``make_trade(price="1.5")`` instead of dict literals."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from tasks.core.models import KLINE_FIELDS
from tasks.core.trades import PRICE

DATA = Path(__file__).resolve().parent.parent / "data" / "binance-ws"
BASE_TIME = 1_723_161_300_000  # 2024-08-08T23:55:00Z


@dataclass(frozen=True)
class Trade:
    symbol: str = "BTCUSDT"
    trade_id: int = 1
    price: str = "100.00000000"
    quantity: str = "1.00000000"
    trade_time: int = BASE_TIME
    is_buyer_maker: bool = True
    event_time: int | None = None

    def line(self) -> str:
        """The trade as Binance's @trade payload."""
        return json.dumps(
            {
                "e": "trade",
                "E": self.event_time or self.trade_time + 1,
                "s": self.symbol,
                "t": self.trade_id,
                "p": self.price,
                "q": self.quantity,
                "T": self.trade_time,
                "m": self.is_buyer_maker,
                "M": True,
            },
            separators=(",", ":"),
        )


def draw_trade(draw: Any, trade_id: int, trade_time: int) -> Trade:
    """A trade with hypothesis-drawn symbol, side and 8-decimal price and quantity."""
    from hypothesis import strategies as st

    return Trade(
        symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])),
        trade_id=trade_id,
        price=format(draw(st.decimals("0.00000001", "99999.99999999", places=8)), "f"),
        quantity=format(draw(st.decimals("0.00000001", "999.99999999", places=8)), "f"),
        trade_time=trade_time,
        is_buyer_maker=draw(st.booleans()),
    )


def make_trade(**fields: object) -> Trade:
    return Trade(**fields)  # type: ignore[arg-type]


def trades_frame(trades: list[Trade]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [t.symbol for t in trades],
            "trade_id": [t.trade_id for t in trades],
            "price": pl.Series([t.price for t in trades], dtype=pl.String).cast(PRICE),
            "quantity": pl.Series([t.quantity for t in trades], dtype=pl.String).cast(PRICE),
            "is_buyer_maker": [t.is_buyer_maker for t in trades],
            "trade_time": pl.Series([t.trade_time for t in trades], dtype=pl.Int64),
        },
        schema_overrides={"trade_id": pl.Int64},
    )


def capture_trade_lines(*files: str) -> list[str]:
    """The ``data`` payloads of the @trade frames in capture files, as exact text."""
    lines = []
    for name in files:
        with gzip.open(DATA / name, "rt") as fh:
            for row in fh:
                _, _, frame = row.partition(" ")
                if '@trade"' in frame[:40]:
                    start = frame.index('"data":') + len('"data":')
                    lines.append(frame[start : frame.rindex("}")])
    return lines


def capture_trades(*files: str) -> list[Trade]:
    out = []
    for line in capture_trade_lines(*files):
        d = json.loads(line)
        out.append(Trade(d["s"], d["t"], d["p"], d["q"], d["T"], d["m"], d["E"]))
    return out


def kline(candle: object) -> tuple[object, ...]:
    """The kline fields of a product candle or a reference candle, for comparing the two."""
    return tuple(getattr(candle, name) for name in KLINE_FIELDS)


@dataclass(frozen=True)
class RefCandle:
    """An independent kline computation in plain Decimal arithmetic, for checking the product."""

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
    first_trade_id: int
    last_trade_id: int


def reference_candles(
    trades: list[Trade], interval_ms: int = 60_000
) -> dict[tuple[str, int], RefCandle]:
    distinct = {(t.symbol, t.trade_id): t for t in trades}
    buckets: dict[tuple[str, int], list[Trade]] = {}
    for t in distinct.values():
        buckets.setdefault((t.symbol, t.trade_time - t.trade_time % interval_ms), []).append(t)
    out = {}
    for key, ts in buckets.items():
        ts.sort(key=lambda t: t.trade_id)
        prices = [Decimal(t.price) for t in ts]
        taker = [t for t in ts if not t.is_buyer_maker]
        out[key] = RefCandle(
            open_time=key[1],
            open=prices[0],
            high=max(prices),
            low=min(prices),
            close=prices[-1],
            volume=sum((Decimal(t.quantity) for t in ts), Decimal(0)),
            quote_volume=sum((Decimal(t.price) * Decimal(t.quantity) for t in ts), Decimal(0)),
            trade_count=len(ts),
            taker_buy_volume=sum((Decimal(t.quantity) for t in taker), Decimal(0)),
            taker_buy_quote_volume=sum(
                (Decimal(t.price) * Decimal(t.quantity) for t in taker), Decimal(0)
            ),
            first_trade_id=ts[0].trade_id,
            last_trade_id=ts[-1].trade_id,
        )
    return out
