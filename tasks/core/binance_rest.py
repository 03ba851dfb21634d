"""Binance spot REST, the pure part: request parameters, response parsing and paging by trade id.

``GET /api/v3/historicalTrades?symbol=BTCUSDT&fromId=3735683259&limit=2`` answers a JSON array, oldest
first::

    [{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.7526",
      "time":1723161255342,"isBuyerMaker":true,"isBestMatch":true},
     {"id":3735683260,"price":"61837.63000000","qty":"0.04800000","quoteQty":"2968.20624",
      "time":1723161255617,"isBuyerMaker":true,"isBestMatch":true}]

``rest_trades_frame`` turns it into rows of the lake's trade schema (``TRADES_SCHEMA``); ``TradePager``
says which ``fromId``/``limit`` to ask for next so a range of trade ids is fetched exactly once.

Weights, limits and security types are those of Binance's spot REST docs
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints, as published
in January 2026; source repository binance/binance-spot-api-docs, ``rest-api.md``):
``historicalTrades`` ("Old trade lookup") weight 25, limit default 500 and max 1000, security type NONE
(no API key needed any more); ``aggTrades`` weight 4, same limits; ``ping`` weight 1. The "LIMITS"
section of the same docs: every answer carries ``X-MBX-USED-WEIGHT-1M``, 429 means back off for
``Retry-After`` seconds, 418 means the IP is banned (2 minutes to 3 days).

``GET /api/v3/depth?symbol=BTCUSDT&limit=1000`` ("Order book", same page) answers a snapshot of the book,
prices and quantities as strings, best first::

    {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...],
     "asks":[["61837.64000000","1.54698000"],...]}

Its weight depends on ``limit`` (default 100, max 5000; more gives 5000 entries): 1-100 weigh 5,
101-500 25, 501-1000 50, 1001-5000 250 (``DEPTH_WEIGHTS``; security type NONE, data source Memory).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import polars as pl

from tasks.core.models import MICROS_THRESHOLD
from tasks.core.trades import PRICE, TRADES_SCHEMA
from tasks.errors import DecodeError

PING_PATH = "/api/v3/ping"
PING_WEIGHT = 1
HISTORICAL_TRADES_PATH = "/api/v3/historicalTrades"
HISTORICAL_TRADES_WEIGHT = 25
AGG_TRADES_PATH = "/api/v3/aggTrades"
AGG_TRADES_WEIGHT = 4
TRADES_DEFAULT_LIMIT = 500  # what Binance sends when ``limit`` is omitted (trades and aggTrades)
TRADES_MAX_LIMIT = 1000
DEPTH_PATH = "/api/v3/depth"
DEPTH_DEFAULT_LIMIT = 100
DEPTH_MAX_LIMIT = 5000
# (highest limit, weight) per band of the "Order book" weight table, in increasing limit order.
DEPTH_WEIGHTS: tuple[tuple[int, int], ...] = ((100, 5), (500, 25), (1000, 50), (5000, 250))
REQUEST_WEIGHT_PER_MINUTE = 6000  # the spot REQUEST_WEIGHT limit per IP (exchangeInfo rateLimits)
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

# A decimal string as Binance prints prices and quantities: digits, at most 8 places (the lake's
# scale), below 10^11 (so price * quantity fits the lake's quote column; see tasks.core.expectations).
_DECIMAL_TEXT = re.compile(r"[0-9]{1,11}(\.[0-9]{1,8})?")
_FIELDS: tuple[tuple[str, type], ...] = (
    ("id", int),
    ("price", str),
    ("qty", str),
    ("quoteQty", str),
    ("time", int),
    ("isBuyerMaker", bool),
    ("isBestMatch", bool),
)
_JSON_TYPE = {int: "an integer", str: "a string", bool: "true or false"}
_INT64_MAX = 2**63 - 1


def historical_trades_params(symbol: str, from_id: int, limit: int) -> dict[str, str]:
    """Query parameters of ``GET /api/v3/historicalTrades``: ``limit`` trades from ``from_id`` on."""
    if not symbol.isalnum():
        raise ValueError(f"symbol must be a Binance symbol like BTCUSDT, got {symbol!r}")
    if from_id < 0:
        raise ValueError(f"fromId must be a trade id >= 0, got {from_id}")
    if not 1 <= limit <= TRADES_MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{TRADES_MAX_LIMIT}, got {limit}")
    return {"symbol": symbol, "fromId": str(from_id), "limit": str(limit)}


def depth_weight(limit: int) -> int:
    """The request weight of ``GET /api/v3/depth`` with ``limit`` (see ``DEPTH_WEIGHTS``)."""
    if not 1 <= limit <= DEPTH_MAX_LIMIT:
        raise ValueError(f"depth limit must be within 1..{DEPTH_MAX_LIMIT}, got {limit}")
    return next(weight for highest, weight in DEPTH_WEIGHTS if limit <= highest)


def depth_params(symbol: str, limit: int) -> dict[str, str]:
    """Query parameters of ``GET /api/v3/depth``: the best ``limit`` levels of each side."""
    if not symbol.isalnum():
        raise ValueError(f"symbol must be a Binance symbol like BTCUSDT, got {symbol!r}")
    depth_weight(limit)  # checks the range
    return {"symbol": symbol, "limit": str(limit)}


def depth_answer(symbol: str, body: bytes) -> dict[str, Any]:
    """The JSON object of a depth answer, checked for its shape only; prices stay strings.

    ``lastUpdateId`` must be an integer and ``bids``/``asks`` arrays of ``[price, qty]`` string
    pairs; anything else raises ``DecodeError`` naming the symbol and the field. The values are not
    parsed here: the order-book code turns them into exact decimals.
    """
    try:
        answer = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        raise DecodeError(f"depth {symbol}: answer is not JSON: {exc}") from exc
    if not isinstance(answer, dict):
        raise DecodeError(
            f"depth {symbol}: answer must be a JSON object, got {_show(answer)[:300]}"
        )
    update_id = answer.get("lastUpdateId")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0:
        raise DecodeError(
            f"depth {symbol}: field 'lastUpdateId' must be an integer >= 0, got {_show(update_id)}"
        )
    for side in ("bids", "asks"):
        levels = answer.get(side)
        if not isinstance(levels, list):
            raise DecodeError(
                f"depth {symbol}: field '{side}' must be an array, got {_show(levels)}"
            )
        for i, level in enumerate(levels):
            if not (
                isinstance(level, list)
                and len(level) == 2
                and all(isinstance(v, str) for v in level)
            ):
                raise DecodeError(
                    f"depth {symbol}: {side}[{i}] must be a [price, qty] pair of strings, got "
                    f"{_show(level)[:100]}"
                )
    return answer


def _decode_error(symbol: str, trade: dict[str, Any], problem: str) -> DecodeError:
    return DecodeError(
        f"historicalTrades {symbol}: trade id={trade.get('id')!r} {problem}; "
        f"trade {json.dumps(trade, default=str, separators=(',', ':'))[:300]}"
    )


def _show(value: object) -> str:
    """A JSON value as it was written (a number parsed to Decimal prints as the number)."""
    return str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)


def _ts_event(time: int) -> int:
    """ns since epoch from a trade time in ms or µs."""
    return time * 1000 if time >= MICROS_THRESHOLD else time * 1_000_000


def _check_trade(symbol: str, trade: dict[str, Any]) -> None:
    for field, kind in _FIELDS:
        if field not in trade:
            raise _decode_error(symbol, trade, f"lacks field '{field}'")
        value = trade[field]
        # bool is an int in Python, but true is no trade id nor time in JSON.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _decode_error(
                symbol,
                trade,
                f"field '{field}' must be {_JSON_TYPE[kind]}, got {_show(value)}",
            )
    for field in ("price", "qty"):
        text = trade[field]
        if not _DECIMAL_TEXT.fullmatch(text) or Decimal(text) <= 0:
            raise _decode_error(
                symbol,
                trade,
                f"field '{field}' must be a decimal string > 0, below 10^11, with at most 8 places, "
                f"got {text!r}",
            )
    if not 0 <= trade["id"] <= _INT64_MAX:
        raise _decode_error(symbol, trade, "field 'id' must be a trade id within 0..2**63-1")
    if trade["time"] <= 0 or _ts_event(trade["time"]) > _INT64_MAX:
        raise _decode_error(
            symbol, trade, f"field 'time' must be a ms or µs epoch time, got {trade['time']}"
        )


def rest_trades_frame(symbol: str, body: bytes, fetched_ns: int) -> pl.DataFrame:
    """One ``TRADES_SCHEMA`` row per trade of a historicalTrades answer (see the module docstring).

    Prices and quantities stay exact (the JSON text cast to Decimal, never a float); ``time`` may be ms
    or µs. REST has no event time, so ``event_time`` is the trade time; ``ts_init`` is ``fetched_ns``;
    ``raw`` is each trade object re-serialised compactly, which is Binance's own bytes; ``message_id``
    names the page, ``rest:historicalTrades:<first id>``. A malformed answer raises ``DecodeError``
    naming the field and the trade id.
    """
    try:
        trades = json.loads(body, parse_float=Decimal)
    except ValueError as exc:
        raise DecodeError(f"historicalTrades {symbol}: answer is not JSON: {exc}") from exc
    if not isinstance(trades, list):
        raise DecodeError(
            f"historicalTrades {symbol}: answer must be a JSON array of trades, got "
            f"{_show(trades)[:300]}"
        )
    for trade in trades:
        if not isinstance(trade, dict):
            raise DecodeError(
                f"historicalTrades {symbol}: every element must be a trade object, got "
                f"{_show(trade)[:300]}"
            )
        _check_trade(symbol, trade)
    times = [int(t["time"]) for t in trades]
    message_id = f"rest:historicalTrades:{trades[0]['id']}" if trades else ""
    return pl.DataFrame(
        {
            "symbol": [symbol] * len(trades),
            "trade_id": [t["id"] for t in trades],
            "price": pl.Series([t["price"] for t in trades], dtype=pl.String).cast(PRICE),
            "quantity": pl.Series([t["qty"] for t in trades], dtype=pl.String).cast(PRICE),
            "is_buyer_maker": [t["isBuyerMaker"] for t in trades],
            "trade_time": [t // 1000 if t >= MICROS_THRESHOLD else t for t in times],
            "ts_event": [_ts_event(t) for t in times],
            "ts_init": [fetched_ns] * len(trades),
            "event_time": [t // 1000 if t >= MICROS_THRESHOLD else t for t in times],
            # Key order is kept, so this is Binance's text (a JSON number with a fraction, which no
            # trade field is, would come back quoted: it was parsed to Decimal).
            "raw": [json.dumps(t, separators=(",", ":"), default=str) for t in trades],
            "message_id": [message_id] * len(trades),
        },
        schema=TRADES_SCHEMA,
    )


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One historicalTrades request: ``limit`` trades from trade id ``from_id`` on."""

    from_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class TradePager:
    """The historicalTrades pages that cover the inclusive trade-id range [first_id, last_id].

    Binance numbers a symbol's trades without gaps and answers ``fromId`` with the trades from that id
    on, so each page starts right after the highest id received, and the last page asks only for
    what is left. A page holding no wanted id while ids are still wanted means those trades do not
    exist (yet): ``missing`` reports them and the caller raises.

        pager = TradePager(100, 2599)
        request = pager.first()                  # PageRequest(from_id=100, limit=1000)
        request = pager.after(request, ids)      # PageRequest(1100, 1000), then (2100, 500), then None
    """

    first_id: int
    last_id: int
    page_size: int = TRADES_MAX_LIMIT

    def __post_init__(self) -> None:
        if not 0 <= self.first_id <= self.last_id:
            raise ValueError(
                f"trade ids must satisfy 0 <= first_id <= last_id, got {self.first_id}..{self.last_id}"
            )
        if not 1 <= self.page_size <= TRADES_MAX_LIMIT:
            raise ValueError(
                f"page_size must be within 1..{TRADES_MAX_LIMIT}, got {self.page_size}"
            )

    def _request(self, from_id: int) -> PageRequest:
        return PageRequest(from_id, min(self.page_size, self.last_id - from_id + 1))

    def first(self) -> PageRequest:
        return self._request(self.first_id)

    def _highest(self, request: PageRequest, ids: Sequence[int]) -> int | None:
        wanted = [i for i in ids if request.from_id <= i <= self.last_id]
        return max(wanted) if wanted else None

    def missing(self, request: PageRequest, ids: Sequence[int]) -> tuple[int, int] | None:
        """The wanted ids [from_id, last_id] when the answer to ``request`` holds none of them."""
        if self._highest(request, ids) is None:
            return request.from_id, self.last_id
        return None

    def after(self, request: PageRequest, ids: Sequence[int]) -> PageRequest | None:
        """The request following ``request`` answered with ``ids``; None once the range is covered.

        Call ``missing`` first: an answer without a wanted id has no next request.
        """
        highest = self._highest(request, ids)
        if highest is None:
            raise ValueError(
                f"the answer to fromId={request.from_id} holds no id up to {self.last_id}: "
                "check TradePager.missing first"
            )
        return self._request(highest + 1) if highest < self.last_id else None
