"""BTCMarkets v3 public REST client: order-book snapshots and the list of markets, for spreads.

    with BtcMarketsRest(before_request=limiter) as btcm:
        book = btcm.orderbook("BTC-AUD")          # OrderBookSnapshot, exact Decimals
        ids = btcm.markets()                      # ["BTC-AUD", "ETH-AUD", ...]

``GET /v3/markets/{marketId}/orderbook?level=2`` answers one object (shape as in CCXT's
``btcmarkets.fetch_order_book`` and BTCMarkets' own Node SDK, ``IOrderbook``)::

    {"marketId":"BTC-AUD","snapshotId":1599936148941000,
     "asks":[["14459.45","0.00456475"],["14463.56","2"],["14470.91","0.98"]],
     "bids":[["14421.01","0.52"],["14421","0.75"],["14418","0.3521"]]}

Prices (AUD for X-AUD markets) and amounts (base asset) are decimal strings without trailing zeros;
bids descend and asks ascend. ``snapshotId`` is the book's time in microseconds since the epoch
(CCXT reads it so). Each entry is one resting *order*, not a price level: two orders at one price are
two entries (``OrderBookSnapshot`` sums them per price), and there is no count field. ``level=1`` (the default) gives the best 50 orders of each
side, ``level=2`` every resting order (55 KB for BTC-AUD, served from a cache up to ~8 s old: successive
answers often repeat a ``snapshotId``); ``level=3`` is refused with 400 ``InvalidOrderbookLevel``. An
offline market answers 200 with both sides empty.

``GET /v3/markets`` answers an array of ``{"marketId","baseAssetName","quoteAssetName",
"minOrderAmount","maxOrderAmount","amountDecimals","priceDecimals","status"}`` (strings;
``status`` is ``Online`` or ``Offline``). Market ids are case sensitive (``btc-aud`` is unknown).

Errors come as ``{"code": "...", "message": "..."}`` (the SDK's ``IError``), e.g. 404
``{"code":"MarketNotFound","message":"market not found"}``, 400 ``InvalidOrderbookLevel``,
``InvalidMarketId``, ``MissingArgument``, and 404 ``NotFound`` for an unknown path.

Rate limits are per IP for public calls, over 10-second windows. The v3 "General notes" (quoted by
hummingbot's BTCMarkets connector) give 50 calls per 10 s by default; answers carry
``x-ratelimit-limit``, observed as 300 for ``/v3/markets/{id}/orderbook``, ``/ticker`` and ``/trades``
and 150 for ``/v3/markets`` (2026-09). What a refusal looks like is not documented in anything we could
read, so a 429 is retried after its ``Retry-After`` when sent, else after a backoff; 5xx answers and
connection errors are retried with exponential backoff and jitter; any other 4xx raises at once. The
caller's own budget goes in ``before_request(1)``, called before every request.

Sources: https://docs.btcmarkets.net/v3/ (the official reference, behind a Cloudflare challenge; not
readable from here); ccxt/ccxt ``python/ccxt/btcmarkets.py`` (endpoints, orderbook and markets
payloads, v3 error handling); BTCMarkets/btcmarkets-node-sdk ``src/types/Markets.ts`` and
``src/types/Error.ts``; hummingbot ``connector/exchange/btc_markets/btc_markets_constants.py``
(limits); nemanull/arbitrage-observatory ``docs/profiles/btcmarkets/rest.md`` (levels, error bodies and
rate-limit headers probed on the live API, 2026-09-23); the BTCMarkets/API wiki FAQ (v1/v2: 50 calls
per 10 s, 100 for order books, a valid User-Agent needed to pass Cloudflare).

Errors, all ``CandleflowError``:

BtcMarketsError             BTCMarkets did not give what was asked for
├── BtcMarketsRejected      a 4xx other than 429: names the status, BTCMarkets' code and message
│   └── UnknownMarket       404 MarketNotFound: no such market id
└── BtcMarketsUnavailable   429, 5xx or connection errors still failing after every attempt
DecodeError                 a 200 answer that is not the documented shape (names market and field)

Parsing is ``tasks.core.orderbook.parse_btcm_orderbook``; this module only fetches and checks that the
answer is the market asked for and not crossed.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from tasks._http import backoff, no_limit, retry_after
from tasks.core.orderbook import Book, Level, parse_btcm_orderbook
from tasks.errors import CandleflowError, DecodeError

log = logging.getLogger(__name__)

BASE_URL = "https://api.btcmarkets.net"
MARKETS_PATH = "/v3/markets"
ORDERBOOK_PATH = "/v3/markets/{market_id}/orderbook"
ORDERBOOK_LEVELS = (1, 2)  # 1: best 50 orders a side; 2: every order. 3 is refused.
USER_AGENT = "candleflow"

_MARKET_ID = re.compile(r"[A-Za-z0-9]{1,20}-[A-Za-z0-9]{1,20}")


class BtcMarketsError(CandleflowError):
    pass


class BtcMarketsRejected(BtcMarketsError):
    def __init__(self, message: str, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UnknownMarket(BtcMarketsRejected):
    pass


class BtcMarketsUnavailable(BtcMarketsError):
    pass


@dataclass(frozen=True, slots=True)
class OrderBookSnapshot:
    """One BTCMarkets book: ``(price, amount)`` per price, best first, exact decimals.

    The orders BTCMarkets lists at one price are summed (``parse_btcm_orderbook``), so ``bids``
    strictly descend and ``asks`` strictly ascend; every price and amount is > 0 and the book is not
    crossed. ``ts_init`` is when we received it (ns since epoch).
    """

    market_id: str
    snapshot_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    ts_init: int

    @property
    def ts_event(self) -> int:
        """The book's time, ns since epoch (``snapshotId`` counts microseconds)."""
        return self.snapshot_id * 1000

    def to_book(self) -> Book:
        """The levels as a ``tasks.core.orderbook.Book`` (what ``tasks.core.spreads`` walks)."""
        return Book(self.bids, self.asks)


def _show(value: object) -> str:
    return json.dumps(value, default=str)[:200]


def _snapshot(market_id: str, body: bytes, ts_init: int) -> OrderBookSnapshot:
    """The answer to ``orderbook(market_id)`` through ``parse_btcm_orderbook``; ``DecodeError`` if bad.

    Beyond the parser's checks, the answer must be for the market asked for and not crossed.
    """

    def bad(problem: str) -> DecodeError:
        return DecodeError(f"BTCMarkets orderbook {market_id}: {problem}")

    try:
        data = json.loads(body)
    except ValueError as exc:
        raise bad(f"answer is not JSON: {exc}") from exc
    try:
        parsed = parse_btcm_orderbook(data)
    except ValueError as exc:
        raise bad(str(exc).removeprefix("BTCMarkets orderbook").lstrip()) from exc
    if parsed.market_id != market_id:
        raise bad(f"field 'marketId' must be {market_id!r}, got {parsed.market_id!r}")
    book = parsed.book
    if book.is_crossed:
        raise bad(
            f"the book is crossed: best bid {book.best_bid} >= best ask {book.best_ask} "
            f"(snapshotId {parsed.snapshot_id})"
        )
    return OrderBookSnapshot(
        market_id, parsed.snapshot_id, tuple(book.bids()), tuple(book.asks()), ts_init
    )


def _parse_markets(body: bytes) -> list[str]:
    try:
        markets = json.loads(body)
    except ValueError as exc:
        raise DecodeError(f"BTCMarkets markets: answer is not JSON: {exc}") from exc
    if not isinstance(markets, list):
        raise DecodeError(f"BTCMarkets markets: answer must be a JSON array, got {_show(markets)}")
    ids: list[str] = []
    for i, market in enumerate(markets):
        market_id = market.get("marketId") if isinstance(market, dict) else None
        if not isinstance(market_id, str) or not _MARKET_ID.fullmatch(market_id):
            raise DecodeError(
                f"BTCMarkets markets: element {i} must be an object with a 'marketId' like "
                f"BTC-AUD, got {_show(market)}"
            )
        ids.append(market_id)
    return ids


def _btcm_error(response: httpx.Response) -> tuple[str | None, str]:
    """BTCMarkets' ``{"code":"MarketNotFound","message":"market not found"}``, or the body's start."""
    try:
        body: Any = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body["code"], str(body.get("message", ""))
    return None, response.text[:200]


class BtcMarketsRest:
    """A synchronous BTCMarkets v3 public REST client over one ``httpx.Client`` (close it, or ``with``).

    ``backoff_base_s``, ``backoff_cap_s`` and ``max_attempts`` shape the retries of 429s without
    ``Retry-After``, 5xx answers and connection errors: waits of ``min(cap, base * 2**n)`` scaled by a
    random factor in [0.5, 1]. ``before_request(1)`` runs before every attempt (the caller's rate
    limit). ``sleep``, ``clock`` (epoch seconds, stamps ``ts_init``), ``rng`` and ``transport`` are
    injectable for tests.
    """

    def __init__(
        self,
        base_url: str = BASE_URL,
        *,
        timeout_s: float = 10.0,
        before_request: Callable[[int], None] = no_limit,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if not 0 < backoff_base_s <= backoff_cap_s:
            raise ValueError(
                f"need 0 < backoff_base_s <= backoff_cap_s, got {backoff_base_s}, {backoff_cap_s}"
            )
        self._http = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )
        self._before_request = before_request
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def orderbook(self, market_id: str, level: int = 2) -> OrderBookSnapshot:
        """``GET /v3/markets/{market_id}/orderbook?level=``: level 1 the best 50 orders a side, 2 all.

        Raises ``UnknownMarket`` for a market BTCMarkets does not list, ``DecodeError`` for an answer
        that is not a valid book (see the module docstring).
        """
        if not _MARKET_ID.fullmatch(market_id):
            raise ValueError(
                f"market_id must be a BTCMarkets market id like BTC-AUD, got {market_id!r}"
            )
        if level not in ORDERBOOK_LEVELS:
            raise ValueError(
                f"level must be 1 (best 50 orders a side) or 2 (every order), got {level}: "
                "BTCMarkets answers other levels with 400 InvalidOrderbookLevel"
            )
        path = ORDERBOOK_PATH.format(market_id=market_id)
        response = self._get(path, {"level": str(level)}, f"orderbook {market_id} level={level}")
        return _snapshot(market_id, response.content, int(self._clock() * 1e9))

    def markets(self) -> list[str]:
        """``GET /v3/markets``: every market id BTCMarkets lists (online or not), in its order."""
        return _parse_markets(self._get(MARKETS_PATH, {}, "markets").content)

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self._backoff_base_s, self._backoff_cap_s, self._rng)

    def _rejected(self, response: httpx.Response, what: str) -> BtcMarketsRejected:
        status = response.status_code
        code, message = _btcm_error(response)
        if status == 404 and code == "MarketNotFound":
            return UnknownMarket(
                f"BTCMarkets has no market for {what}: 404 {code}, {message!r}. Market ids are case "
                "sensitive, like BTC-AUD; GET /v3/markets lists them.",
                status,
                code,
            )
        return BtcMarketsRejected(
            f"BTCMarkets answered {status} for {what} ({response.request.url}): "
            f"code {code}, {message!r}",
            status,
            code,
        )

    def _get(self, path: str, params: Mapping[str, str], what: str) -> httpx.Response:
        """GET ``path``, retrying 429, 5xx and connection errors; ``what`` names it in messages."""
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            self._before_request(1)
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:  # refused, reset, timed out, broken HTTP
                failure = f"no answer ({type(exc).__name__}: {exc})"
                wait = self._backoff(attempt)
            else:
                status = response.status_code
                if status < 300:
                    return response
                failure = f"BTCMarkets answered {status}"
                if status == 429:
                    asked = retry_after(response)
                    wait = self._backoff(attempt) if asked is None else asked
                elif status >= 500:
                    wait = self._backoff(attempt)
                else:
                    raise self._rejected(response, what)
            if attempt == self._max_attempts:
                break
            log.warning(
                "%s for %s; retrying in %.1f s (attempt %d/%d)",
                failure,
                what,
                wait,
                attempt + 1,
                self._max_attempts,
            )
            self._sleep(wait)
        raise BtcMarketsUnavailable(
            f"BTCMarkets {what} failed {self._max_attempts} times (429s, 5xx answers and "
            f"connection errors are retried); last failure: {failure}"
        )
