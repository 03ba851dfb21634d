"""Builders for Binance wire-format test data, with realistic defaults.

Binance writes its JSON compactly (no spaces) with the keys in a fixed order; the builders do the same so
the exact-bytes checks mean something.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

from producer.parse import TradeFrame, parse_frame

TRADE_TIME_MS = (
    1_723_161_255_342  # 2024-08-08T23:54:15.342Z, the first BTCUSDT trade of the capture
)


def make_trade_data(
    *,
    symbol: str = "BTCUSDT",
    trade_id: int = 3_735_683_259,
    price: str = "61837.63000000",
    quantity: str = "0.02000000",
    trade_time_ms: int = TRADE_TIME_MS,
    event_time_ms: int | None = None,
    buyer_maker: bool = True,
) -> str:
    """A ``@trade`` event's ``data`` object as Binance sends it."""
    event = trade_time_ms + 1 if event_time_ms is None else event_time_ms
    maker = "true" if buyer_maker else "false"
    return (
        f'{{"e":"trade","E":{event},"s":"{symbol}","t":{trade_id},"p":"{price}","q":"{quantity}",'
        f'"T":{trade_time_ms},"m":{maker},"M":true}}'
    )


def make_frame(data: str, *, stream: str = "btcusdt@trade") -> str:
    """A combined-stream envelope around a ``data`` object's text."""
    return f'{{"stream":"{stream}","data":{data}}}'


def make_trade_frame(*, symbol: str = "BTCUSDT", trade_id: int = 3_735_683_259) -> str:
    """A combined-stream ``@trade`` frame."""
    data = make_trade_data(symbol=symbol, trade_id=trade_id)
    return make_frame(data, stream=f"{symbol.lower()}@trade")


def make_book_ticker_frame(symbol: str = "BTCUSDT") -> str:
    data = (
        f'{{"u":50093239212,"s":"{symbol}","b":"61837.63000000","B":"3.78826000",'
        '"a":"61837.64000000","A":"1.54698000"}'
    )
    return make_frame(data, stream=f"{symbol.lower()}@bookTicker")


def make_trade(
    *, symbol: str = "BTCUSDT", trade_id: int = 3_735_683_259, line: bytes | None = None
) -> TradeFrame:
    """A parsed trade; ``line`` overrides the payload bytes (for packing arbitrary content)."""
    frame = parse_frame(make_trade_frame(symbol=symbol, trade_id=trade_id))
    assert frame is not None
    if line is None:
        return frame
    return TradeFrame(line, frame.symbol, frame.trade_id, frame.trade_time_ms, frame.event_time_ms)


def write_capture(path: Path, frames: Sequence[tuple[int, str]]) -> Path:
    """A gzip capture file of ``(receive ns, frame text)`` lines, as ``data/binance-ws`` holds."""
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for recv_ns, text in frames:
            out.write(f"{recv_ns} {text}\n")
    return path
