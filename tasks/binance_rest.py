"""Binance spot REST client: fetch trades by trade id, for the backfill of gaps.

    with BinanceRest("https://api.binance.com", before_request=limiter) as binance:
        trades = binance.fetch_trades("BTCUSDT", 3735683259, 3735685999)  # TRADES_SCHEMA rows
        book = binance.depth_snapshot("BTCUSDT", 1000)  # {"lastUpdateId", "bids", "asks"}

Requests follow the "LIMITS" section of Binance's REST docs (binance/binance-spot-api-docs,
``rest-api.md``): a 429 is retried after its ``Retry-After`` seconds, 5xx answers and connection errors
or timeouts after an exponential backoff with jitter, a 418 (IP banned) is never retried, and when
``X-MBX-USED-WEIGHT-1M`` comes near the per-minute budget the client waits for the next minute. Any
other rate-limit policy comes from the caller's ``before_request(weight)`` hook, called before every
request (the backfill passes a Prefect global concurrency limit).

Errors, all ``CandleflowError``:

BinanceError             Binance did not give the trades asked for
├── BinanceBanned        HTTP 418: the IP is banned; never retried, the backfill stops
├── BinanceRejected      another 4xx: names the status, Binance's code and msg, and the request
├── BinanceUnavailable   429, 5xx or connection errors still failing after every attempt
└── TradesMissing        no answer held some wanted ids (past the latest trade, or a hole)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
import polars as pl

from tasks._http import backoff, no_limit, retry_after
from tasks.core.binance_rest import (
    DEPTH_PATH,
    HISTORICAL_TRADES_PATH,
    HISTORICAL_TRADES_WEIGHT,
    PING_PATH,
    PING_WEIGHT,
    REQUEST_WEIGHT_PER_MINUTE,
    TRADES_MAX_LIMIT,
    USED_WEIGHT_HEADER,
    TradePager,
    depth_answer,
    depth_params,
    depth_weight,
    historical_trades_params,
    rest_trades_frame,
)
from tasks.core.trades import TRADES_SCHEMA
from tasks.errors import CandleflowError

log = logging.getLogger(__name__)

USER_AGENT = "candleflow"


class BinanceError(CandleflowError):
    pass


class BinanceBanned(BinanceError):
    pass


class BinanceRejected(BinanceError):
    def __init__(self, message: str, status: int, code: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BinanceUnavailable(BinanceError):
    pass


class TradesMissing(BinanceError):
    def __init__(self, symbol: str, first_id: int, last_id: int, reason: str) -> None:
        super().__init__(f"Binance has no {symbol} trades with ids {first_id}..{last_id}: {reason}")
        self.symbol = symbol
        self.first_id = first_id
        self.last_id = last_id


def _binance_error(response: httpx.Response) -> tuple[int | None, str]:
    """Binance's ``{"code":-1121,"msg":"Invalid symbol."}``, or the start of whatever came instead."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("code"), int):
        return int(body["code"]), str(body.get("msg", ""))
    return None, response.text[:200]


class BinanceRest:
    """A synchronous Binance spot REST client over one ``httpx.Client`` (close it, or use ``with``).

    ``weight_budget``: per-minute request weight to stay under (Binance allows 6000 per IP); when
    an answer's ``X-MBX-USED-WEIGHT-1M`` comes within ``weight_margin`` of it, the client sleeps to
    the next minute boundary, when Binance's window restarts. ``backoff_base_s``, ``backoff_cap_s``
    and ``max_attempts`` shape the retries of 429s without ``Retry-After``, 5xx answers and
    connection errors: waits of ``min(cap, base * 2**n)`` scaled by a random factor in [0.5, 1].
    ``sleep``, ``clock`` (epoch seconds) and ``rng`` are injectable for tests; so is ``transport``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        before_request: Callable[[int], None] = no_limit,
        weight_budget: int = REQUEST_WEIGHT_PER_MINUTE,
        weight_margin: int = 10 * HISTORICAL_TRADES_WEIGHT,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_attempts: int = 8,
        page_size: int = TRADES_MAX_LIMIT,
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
        if not 0 <= weight_margin < weight_budget:
            raise ValueError(
                f"need 0 <= weight_margin < weight_budget, got {weight_margin}, {weight_budget}"
            )
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["X-MBX-APIKEY"] = api_key
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self._before_request = before_request
        self._weight_budget = weight_budget
        self._weight_margin = weight_margin
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._max_attempts = max_attempts
        self._page_size = page_size
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

    def ping(self) -> None:
        """``GET /api/v3/ping``: returns when Binance answers, raises ``BinanceError`` otherwise."""
        self._get(PING_PATH, {}, PING_WEIGHT, "ping")

    def depth_snapshot(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        """``GET /api/v3/depth``: the best ``limit`` bids and asks of ``symbol`` (1..5000).

        Returns Binance's object ``{"lastUpdateId": int, "bids": [[price, qty], ...], "asks": ...}``
        with prices and quantities left as the strings Binance sent, best level first. The request
        weighs 5 to 250 by ``limit`` (``depth_weight``), taken from ``before_request`` like any
        other. A malformed answer raises ``DecodeError``.
        """
        params = depth_params(symbol, limit)
        what = f"depth {symbol} limit={limit}"
        response = self._get(DEPTH_PATH, params, depth_weight(limit), what)
        return depth_answer(symbol, response.content)

    def fetch_trades(self, symbol: str, first_id: int, last_id: int) -> pl.DataFrame:
        """The trades of ``symbol`` with ids in [first_id, last_id], in id order (``TRADES_SCHEMA``).

        Pages ``/api/v3/historicalTrades`` from ``first_id``; raises ``TradesMissing`` when Binance
        has no trade for ids still wanted.
        """
        pager = TradePager(first_id, last_id, self._page_size)
        pages: list[pl.DataFrame] = []
        page_request = pager.first()
        while True:
            params = historical_trades_params(symbol, page_request.from_id, page_request.limit)
            what = f"historicalTrades {symbol} fromId={page_request.from_id}"
            response = self._get(HISTORICAL_TRADES_PATH, params, HISTORICAL_TRADES_WEIGHT, what)
            page = rest_trades_frame(symbol, response.content, int(self._clock() * 1e9))
            ids = page.get_column("trade_id").to_list()
            missing = pager.missing(page_request, ids)
            if missing is not None:
                raise TradesMissing(
                    symbol,
                    *missing,
                    f"historicalTrades answered fromId={page_request.from_id} without them. Trade "
                    "ids have no gaps, so these trades do not exist yet: backfill only ids up to "
                    "the latest trade.",
                )
            pages.append(page)
            following = pager.after(page_request, ids)
            if following is None:
                break
            page_request = following
        trades = (
            pl.concat(pages)
            .filter(pl.col("trade_id").is_between(first_id, last_id))
            .unique("trade_id", keep="first", maintain_order=True)
            .sort("trade_id")
        )
        if trades.height != last_id - first_id + 1:
            got = set(trades.get_column("trade_id").to_list())
            holes = [i for i in range(first_id, last_id + 1) if i not in got]
            raise TradesMissing(
                symbol,
                holes[0],
                holes[-1],
                f"{len(holes)} of the ids in this span were in no historicalTrades answer, though "
                "Binance numbers trades without gaps; check the symbol and retry the backfill.",
            )
        log.info(
            "Fetched %d %s trades (ids %d..%d) from Binance in %d page(s)",
            trades.height,
            symbol,
            first_id,
            last_id,
            len(pages),
        )
        return trades.select(list(TRADES_SCHEMA))

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, self._backoff_base_s, self._backoff_cap_s, self._rng)

    def _get(self, path: str, params: Mapping[str, str], weight: int, what: str) -> httpx.Response:
        """GET ``path``, retrying what Binance's docs say to retry; ``what`` names it in messages."""
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            self._before_request(weight)
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:  # refused, reset, timed out, broken HTTP
                failure = f"no answer ({type(exc).__name__}: {exc})"
                wait = self._backoff(attempt)
            else:
                status = response.status_code
                if status < 300:
                    self._mind_weight(response, what)
                    return response
                if status == 418:
                    raise BinanceBanned(
                        f"Binance answered 418 for {what}: this IP is banned for sending requests "
                        f"after 429s; Retry-After {response.headers.get('Retry-After', '(none)')} "
                        "s. The backfill stopped; do not retry before the ban is over."
                    )
                failure = f"Binance answered {status}"
                if status == 429:
                    asked = retry_after(response)
                    wait = self._backoff(attempt) if asked is None else asked
                elif status >= 500:
                    wait = self._backoff(attempt)
                else:
                    code, msg = _binance_error(response)
                    raise BinanceRejected(
                        f"Binance answered {status} for {what} ({response.request.url}): "
                        f"code {code}, {msg!r}",
                        status,
                        code,
                    )
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
        raise BinanceUnavailable(
            f"{what} failed {self._max_attempts} times (429s, 5xx answers and connection errors "
            f"are retried); last failure: {failure}"
        )

    def _mind_weight(self, response: httpx.Response, what: str) -> None:
        try:
            used = int(response.headers[USED_WEIGHT_HEADER])
        except (KeyError, ValueError):
            return
        if used < self._weight_budget - self._weight_margin:
            return
        wait = 60.0 - self._clock() % 60.0
        log.info(
            "Binance request weight used this minute is %d of a budget of %d after %s; "
            "waiting %.1f s for the next minute",
            used,
            self._weight_budget,
            what,
            wait,
        )
        self._sleep(wait)
