"""Response shapes, for the OpenAPI docs and response validation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class SeedRecord(BaseModel):
    marketid: str = Field(examples=["BTCUSDT_1m"])
    timestamp: str = Field(examples=["2024-08-08T23:54:00Z"])
    data: list[float] = Field(
        description="open, high, low, close, then spread min, q1, median, q3, max where sampled "
        "(numbers written with their exact stored decimal digits)."
    )


class Quartiles(BaseModel):
    min: str | None
    q1: str | None
    median: str | None
    q3: str | None
    max: str | None


class SpreadOut(Quartiles):
    samples: int | None = Field(description="Order-book samples in the interval.")
    thin: int | None = Field(description="Samples whose book could not fill the notional.")
    bps: Quartiles = Field(description="The spread in basis points of the mid price.")


class CandleOut(BaseModel):
    time: int = Field(description="Open time, seconds since the epoch (UTC).")
    open_time: str
    open: str | None
    high: str | None
    low: str | None
    close: str | None
    volume: str | None
    quote_volume: str | None
    taker_buy_volume: str | None
    taker_buy_quote_volume: str | None
    trade_count: int | None
    first_trade_id: int | None
    last_trade_id: int | None
    complete: bool = Field(description="False while an open gap in the trade record overlaps it.")
    spread: SpreadOut | None


class CandlesOut(BaseModel):
    market: str
    interval: Literal["1m", "1h", "1d"]
    kind: Literal["trades", "mid"] = Field(
        description="trades: Binance klines; mid: the mid price of a market sampled for spreads."
    )
    limit: int = Field(description="The limit applied (requests above the maximum are capped).")
    candles: list[CandleOut]


class AlertOut(BaseModel):
    symbol: str
    rule: str
    kind: str
    severity: str
    minute: str
    time: int
    subject: str
    published: bool
