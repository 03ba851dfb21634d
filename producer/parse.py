"""Binance's combined-stream frames turned into trade lines for the message contract. Pure: no I/O.

A combined-stream frame wraps one event of one stream; for ``<symbol>@trade`` it looks like::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
     "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

(one line on the wire). The contract (``tasks.core.contract``) carries the ``data`` object *exactly as
Binance sent it*, so the parser slices the original text of that value out of the envelope instead of
re-serializing it; every member is still decoded with the standard JSON decoder, so a frame that is not
valid JSON is rejected. Other streams (``@bookTicker``, ``@depth@100ms``) are recognised and ignored.

Capture files (``data/binance-ws``) hold one frame per line as ``<receive time, ns since epoch> <frame>``;
one line of each is a REST depth snapshot (``{"lastUpdateId":...}``), which is not a stream frame.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tasks.core.models import to_ms
from tasks.errors import CandleflowError

MAX_INT = 10**18  # ids and times are Int64 downstream

TRADE_STREAM_SUFFIX = "@trade"

_STREAM_FIRST = '{"stream":"'  # how Binance begins every envelope; others take the slow path
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_DECODER = json.JSONDecoder()


class MalformedFrame(CandleflowError, ValueError):
    """A websocket frame or capture line that is not what Binance sends; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class TradeFrame:
    """One trade event: the exact ``data`` bytes for the SQS body plus the fields the producer reports.

    Times are Binance's integer milliseconds since the epoch: ``trade_time_ms`` (``T``) is when the trade
    happened, ``event_time_ms`` (``E``) when Binance published it.
    """

    line: bytes
    symbol: str
    trade_id: int
    trade_time_ms: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One recorded frame, its stream's name and when the recorder received it (ns since the epoch)."""

    recv_ns: int
    stream: str
    text: str


def trade_stream(symbol: str) -> str:
    """The combined-stream name of a symbol's trades (``BTCUSDT`` -> ``btcusdt@trade``)."""
    return f"{symbol.lower()}{TRADE_STREAM_SUFFIX}"


def parse_frame(text: str) -> TradeFrame | None:
    """The trade carried by a combined-stream frame, or ``None`` for another stream's frame.

    Raises ``MalformedFrame`` when the text is not a combined-stream envelope or its trade is incomplete.
    """
    stream, span = _envelope(text)
    if stream is None or not stream.endswith(TRADE_STREAM_SUFFIX):
        return None
    if span is None:
        raise MalformedFrame(f"{stream} frame has no 'data': {text[:200]!r}")
    start, end, data = span
    line = text[start:end]
    if "\n" in line or "\r" in line:
        raise MalformedFrame(f"{stream} trade spans several lines: {line[:200]!r}")
    return _trade(stream, data, line)


def parse_capture_line(line: str) -> CapturedFrame | None:
    """A capture-file line as (receive time, frame); ``None`` for the REST depth snapshot or a blank line.

    Raises ``MalformedFrame`` when the line is not ``<integer ns> <JSON object>``.
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    stamp, sep, text = line.partition(" ")
    if not sep or not stamp.isdigit():
        raise MalformedFrame(f"capture line does not start with '<ns> ': {line[:200]!r}")
    if text.startswith(_STREAM_FIRST):
        end = text.find('"', len(_STREAM_FIRST))
        if end > 0:
            return CapturedFrame(int(stamp), text[len(_STREAM_FIRST) : end], text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MalformedFrame(f"capture line is not JSON: {exc}: {line[:200]!r}") from None
    if isinstance(value, dict) and isinstance(value.get("stream"), str):
        return CapturedFrame(int(stamp), value["stream"], text)
    if isinstance(value, dict) and "lastUpdateId" in value:
        return None
    raise MalformedFrame(f"capture line is neither a stream frame nor a snapshot: {line[:200]!r}")


def _envelope(text: str) -> tuple[str | None, tuple[int, int, object] | None]:
    """The stream name and the (start, end, decoded value) of ``data``, walking the top-level members.

    Stops early, without decoding ``data``, once the stream is known not to be a trade stream.
    """
    try:
        pos = _skip(text, 0)
        if not text.startswith("{", pos):
            raise MalformedFrame(f"frame is not a JSON object: {text[:200]!r}")
        pos = _skip(text, pos + 1)
        stream: str | None = None
        span: tuple[int, int, object] | None = None
        if text.startswith("}", pos):
            raise MalformedFrame(f"frame is an empty object: {text[:200]!r}")
        while True:
            key, pos = _DECODER.raw_decode(text, pos)
            if not isinstance(key, str):
                raise MalformedFrame(f"frame has a non-string key: {text[:200]!r}")
            pos = _skip(text, pos)
            if not text.startswith(":", pos):
                raise MalformedFrame(f"frame misses ':' after {key!r}: {text[:200]!r}")
            start = _skip(text, pos + 1)
            value, pos = _DECODER.raw_decode(text, start)
            if key == "stream":
                if not isinstance(value, str):
                    raise MalformedFrame(f"frame's stream is not a string: {text[:200]!r}")
                stream = value
                if not stream.endswith(TRADE_STREAM_SUFFIX):
                    return stream, None
            elif key == "data":
                span = (start, pos, value)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                continue
            if text.startswith("}", pos) and not text[pos + 1 :].strip(" \t\n\r"):
                return stream, span
            raise MalformedFrame(f"frame is not one JSON object: {text[:200]!r}")
    except json.JSONDecodeError as exc:
        raise MalformedFrame(f"frame is not valid JSON ({exc}): {text[:200]!r}") from None


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def _trade(stream: str, data: object, line: str) -> TradeFrame:
    if not isinstance(data, dict) or data.get("e") != "trade":
        raise MalformedFrame(f"{stream} data is not a trade event: {line[:200]!r}")
    symbol = data.get("s")
    if not isinstance(symbol, str) or trade_stream(symbol) != stream:
        raise MalformedFrame(f"{stream} trade names symbol {symbol!r}: {line[:200]!r}")
    ints = {k: data.get(k) for k in ("t", "E", "T")}
    bad = [
        k
        for k, v in ints.items()
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < MAX_INT
    ]
    bad += [k for k in ("p", "q") if not _is_decimal(data.get(k))]
    bad += [k for k in ("m",) if not isinstance(data.get(k), bool)]
    if bad:
        raise MalformedFrame(f"{stream} trade has bad or missing {', '.join(bad)}: {line[:200]!r}")
    return TradeFrame(
        line=line.encode("utf-8"),
        symbol=symbol,
        trade_id=int(data["t"]),
        trade_time_ms=to_ms(int(data["T"])),
        event_time_ms=to_ms(int(data["E"])),
    )


def _is_decimal(value: object) -> bool:
    return isinstance(value, str) and _DECIMAL.match(value) is not None
