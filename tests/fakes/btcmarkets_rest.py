"""A loopback BTCMarkets v3 public REST API: a real HTTP server with realistic, moving AUD books.

It serves what the spread scraper uses, as BTCMarkets does (see ``tasks/btcmarkets_rest.py``):

- ``GET /v3/markets``: ``[{"marketId","baseAssetName","quoteAssetName","minOrderAmount",
  "maxOrderAmount","amountDecimals","priceDecimals","status"}]`` for the markets of ``MARKETS``;
- ``GET /v3/markets/{marketId}/orderbook?level=1|2``: ``{"marketId","snapshotId","asks","bids"}``,
  one ``[price, amount]`` string pair per resting order (prices without trailing zeros, as BTCMarkets
  prints them), bids descending, asks ascending; level 1 (the default) the best 50 orders a side,
  level 2 all of them. Another level gets 400 ``InvalidOrderbookLevel``, an unknown market 404
  ``{"code":"MarketNotFound","message":"market not found"}``, another path 404 ``NotFound``.

Each market's book is built from ``random.Random(market_id)`` around a realistic AUD mid price:
``levels`` (50) distinct prices a side on the market's tick (``priceDecimals``), one to three orders
at a price, amounts on ``amountDecimals`` and at least ``minOrderAmount``, a spread of a few basis
points, and more size further from the top. The book moves: the mid takes a small random-walk step
and every price and amount is drawn again, after each orderbook answer for that market, or, with
``step_s``, once per ``step_s`` seconds of ``clock`` (then answers within one step repeat the same
book and ``snapshotId``, like BTCMarkets' cache). ``snapshotId`` is ``clock`` in µs, increasing.
``advance(steps)`` moves books by hand; ``set_book`` scripts a market's exact book, which then stays.

Every answer carries ``x-ratelimit-limit`` and ``x-ratelimit-remaining`` for its bucket (300 calls a
10-second window of ``clock`` for orderbooks, 150 for ``/v3/markets``, as observed on the live API); a
call past the limit gets 429 with ``Retry-After`` up to the next window (the body is our guess: the
real refusal is undocumented). Faults are opt-in and consumed one per request before normal answers:
``fail_next(status, retry_after=...)``, ``answer_next(body)`` (say, a malformed book),
``stall_next(seconds)``, ``drop_next()``. ``requests`` logs every request.

    with FakeBtcMarketsRest() as fake:
        httpx.get(f"{fake.url}/v3/markets/BTC-AUD/orderbook", params={"level": 2})
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

Side = tuple[tuple[str, str], ...]

WINDOW_S = 10
LIMITS = {"orderbook": 300, "markets": 150}
LEVEL_1_ORDERS = 50
ERROR_BODIES: dict[int, bytes] = {
    429: b'{"code":"TooManyRequests","message":"too many requests"}',
    500: b'{"code":"InternalServerError","message":"internal server error"}',
    502: b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
    503: b'{"code":"ServiceUnavailable","message":"service unavailable"}',
    504: b"<html><head><title>504 Gateway Time-out</title></head><body>cloudflare</body></html>",
}
_ORDERBOOK = re.compile(r"/v3/markets/([^/]+)/orderbook")


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """How a market's generated book looks. Prices in AUD; ``*_bps`` relative to the mid."""

    market_id: str
    mid: float  # where the random walk starts
    price_decimals: int
    amount_decimals: int
    min_order_amount: str
    top_notional: float  # mean AUD value at the best price of a side
    spread_bps: float  # mean best ask - best bid
    gap_bps: float  # mean distance between neighbouring prices of a side
    step_bps: float  # standard deviation of the mid's move per step

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_decimals)

    def listing(self) -> dict[str, str]:
        base, quote = self.market_id.split("-")
        return {
            "marketId": self.market_id,
            "baseAssetName": base,
            "quoteAssetName": quote,
            "minOrderAmount": self.min_order_amount,
            "maxOrderAmount": "1000000",
            "amountDecimals": str(self.amount_decimals),
            "priceDecimals": str(self.price_decimals),
            "status": "Online",
        }


# The AUD markets of the spread scraper, near their late-2025 prices.
MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("BTC-AUD", 95_000.0, 2, 8, "0.00001", 4_000, 4, 1.0, 2),
    MarketSpec("ETH-AUD", 3_900.0, 2, 8, "0.0001", 3_000, 6, 1.5, 3),
    MarketSpec("XRP-AUD", 0.9, 4, 8, "1", 1_500, 12, 1.5, 4),
    MarketSpec("SOL-AUD", 220.0, 2, 8, "0.001", 1_500, 10, 2.0, 4),
    MarketSpec("SUI-AUD", 5.2, 4, 8, "0.1", 600, 15, 3.0, 5),
    MarketSpec("USDT-AUD", 1.53, 4, 8, "1", 8_000, 5, 1.0, 0.5),
    MarketSpec("USDC-AUD", 1.53, 4, 8, "1", 4_000, 8, 1.5, 0.5),
    MarketSpec("LTC-AUD", 100.0, 2, 8, "0.001", 800, 20, 3.0, 4),
    MarketSpec("XLM-AUD", 0.55, 4, 8, "1", 400, 25, 4.0, 5),
    MarketSpec("AVAX-AUD", 38.0, 2, 8, "0.01", 500, 20, 3.0, 5),
)


def price_text(value: Decimal) -> str:
    """A decimal as BTCMarkets prints it: no trailing zeros, no exponent (``"95000"``, ``"0.52"``)."""
    return format(value.normalize(), "f")


class _GeneratedBook:
    """One market's moving book; each ``move`` is a random-walk step of the mid and a fresh draw."""

    def __init__(self, spec: MarketSpec, levels: int) -> None:
        self.spec = spec
        self.levels = levels
        self.rng = random.Random(spec.market_id)
        self.mid = spec.mid
        self.steps = 0
        self.bids, self.asks = self._draw()

    def move(self) -> None:
        self.mid *= math.exp(self.rng.gauss(0.0, self.spec.step_bps / 1e4))
        self.steps += 1
        self.bids, self.asks = self._draw()

    def _draw(self) -> tuple[Side, Side]:
        spec, rng = self.spec, self.rng
        mid_ticks = self.mid / float(spec.tick)
        half = mid_ticks * spec.spread_bps * rng.uniform(0.5, 1.5) / 2e4
        best_bid = math.floor(mid_ticks - half)
        best_ask = max(math.ceil(mid_ticks + half), best_bid + 1)
        mean_gap = max(1.0, mid_ticks * spec.gap_bps / 1e4)
        bids = self._side(best_bid, -1, mean_gap)
        asks = self._side(best_ask, +1, mean_gap)
        return bids, asks

    def _side(self, best: int, direction: int, mean_gap: float) -> Side:
        spec, rng = self.spec, self.rng
        quantum = Decimal(1).scaleb(-spec.amount_decimals)
        minimum = Decimal(spec.min_order_amount)
        orders: list[tuple[str, str]] = []
        ticks = best
        for i in range(self.levels):
            if ticks < 1:
                break
            price = Decimal(ticks).scaleb(-spec.price_decimals)
            notional = spec.top_notional * (1 + 0.08 * i) * rng.lognormvariate(0.0, 0.5)
            count = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
            shares = [rng.uniform(0.2, 1.0) for _ in range(count)]
            for share in shares:
                amount = Decimal(notional * share / sum(shares) / float(price))
                amount = max(amount.quantize(quantum, ROUND_DOWN), minimum)
                orders.append((price_text(price), price_text(amount)))
            ticks += direction * max(1, round(rng.expovariate(1.0 / mean_gap)))
        return tuple(orders)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; header names are lower case."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Scripted:
    status: int = 0  # 0: answer normally
    body: bytes | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str) -> _Answer:
    return _Answer(status, json.dumps({"code": code, "message": message}).encode())


class FakeBtcMarketsRest:
    """The server and its state; tests read ``url`` and ``requests``, script books and faults."""

    def __init__(
        self,
        markets: Sequence[MarketSpec] = MARKETS,
        *,
        levels: int = 50,
        clock: Callable[[], float] = time.time,
        step_s: float | None = None,
        limits: dict[str, int] | None = None,
    ) -> None:
        self.specs = {m.market_id: m for m in markets}
        self._generated = {m.market_id: _GeneratedBook(m, levels) for m in markets}
        self._scripted: dict[str, tuple[Side, Side]] = {}
        self._clock = clock
        self._start = clock()
        self._step_s = step_s
        self._snapshot = dict.fromkeys(self.specs, int(self._start * 1e6))
        self.limits = dict(LIMITS, **(limits or {}))
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._script: deque[_Scripted] = deque()
        self._window = int(self._start // WINDOW_S)
        self._used = dict.fromkeys(self.limits, 0)
        self._server: LoopbackServer | None = None

    # --- state tests drive ---

    def book(self, market_id: str, level: int = 2) -> dict[str, object]:
        """The orderbook answer ``market_id`` has now, as served (without moving it)."""
        with self._lock:
            return self._book(market_id, level)

    def advance(self, steps: int = 1, market_id: str | None = None) -> None:
        """Move ``market_id``'s book (every generated book if None) ``steps`` random-walk steps."""
        with self._lock:
            for m in [market_id] if market_id else list(self._generated):
                for _ in range(steps):
                    self._move(m)

    def set_book(
        self,
        market_id: str,
        bids: Sequence[tuple[str, str]],
        asks: Sequence[tuple[str, str]],
        *,
        snapshot_id: int | None = None,
    ) -> None:
        """Serve exactly these ``[price, amount]`` strings for ``market_id`` (at every level) from now on."""
        if market_id not in self.specs:
            raise ValueError(f"the fake lists no market {market_id!r}; known: {sorted(self.specs)}")
        with self._lock:
            self._scripted[market_id] = (tuple(bids), tuple(asks))
            self._snapshot[market_id] = snapshot_id or self._next_snapshot(market_id)

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        body: bytes | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (a BTCMarkets-like body unless ``body``);
        ``retry_after`` sets the ``Retry-After`` header (seconds)."""
        with self._lock:
            self._script.extend([_Scripted(status, body, retry_after)] * times)

    def answer_next(self, body: bytes, *, times: int = 1) -> None:
        """Answer the next ``times`` requests 200 with ``body`` instead of the real answer."""
        self.fail_next(200, body=body, times=times)

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` requests normally, but only after ``seconds``."""
        with self._lock:
            self._script.extend([_Scripted(delay_s=seconds)] * times)

    def drop_next(self, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` requests without answering."""
        with self._lock:
            self._script.extend([_Scripted(drop=True)] * times)

    # --- server life ---

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "fake-btcmarkets-rest"

            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler, "fake-btcmarkets-rest")
        self.url = self._server.url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.stop()

    # --- books (call with the lock held) ---

    def _next_snapshot(self, market_id: str) -> int:
        return max(self._snapshot[market_id] + 1, int(self._clock() * 1e6))

    def _move(self, market_id: str) -> None:
        if market_id not in self._scripted:
            self._generated[market_id].move()
            self._snapshot[market_id] = self._next_snapshot(market_id)

    def _book(self, market_id: str, level: int) -> dict[str, object]:
        bids, asks = self._scripted.get(market_id) or (
            self._generated[market_id].bids,
            self._generated[market_id].asks,
        )
        if level == 1:
            bids, asks = bids[:LEVEL_1_ORDERS], asks[:LEVEL_1_ORDERS]
        return {
            "marketId": market_id,
            "snapshotId": self._snapshot[market_id],
            "asks": [list(a) for a in asks],
            "bids": [list(b) for b in bids],
        }

    def _orderbook(self, market_id: str, params: dict[str, str]) -> _Answer:
        if market_id not in self.specs:
            return _error(404, "MarketNotFound", "market not found")
        level = params.get("level", "1")
        if level not in ("1", "2"):
            return _error(400, "InvalidOrderbookLevel", "invalid orderbook level")
        if self._step_s is not None:
            due = int((self._clock() - self._start) // self._step_s)
            while self._generated[market_id].steps < due and market_id not in self._scripted:
                self._move(market_id)
        answer = self._book(market_id, int(level))
        if self._step_s is None:
            self._move(market_id)
        return _Answer(200, json.dumps(answer, separators=(",", ":")).encode())

    # --- answering ---

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        match = _ORDERBOOK.fullmatch(url.path)
        bucket = "orderbook" if match else "markets"
        with self._lock:
            self.requests.append(RecordedRequest(url.path, params, headers))
            window = int(self._clock() // WINDOW_S)
            if window != self._window:
                self._window, self._used = window, dict.fromkeys(self.limits, 0)
            over = self._used[bucket] >= self.limits[bucket]
            if not over:
                self._used[bucket] += 1
            limit_headers = {
                "x-ratelimit-limit": str(self.limits[bucket]),
                "x-ratelimit-remaining": str(self.limits[bucket] - self._used[bucket]),
            }
            to_next_window = math.ceil(WINDOW_S - self._clock() % WINDOW_S)
            scripted = self._script.popleft() if self._script else None
            answer: _Answer | None = None
            if scripted is None or not (scripted.status or scripted.drop):
                if over:
                    answer = _Answer(429, ERROR_BODIES[429], {"Retry-After": str(to_next_window)})
                elif match:
                    answer = self._orderbook(match.group(1), params)
                elif url.path == "/v3/markets":
                    listing = [s.listing() for s in self.specs.values()]
                    answer = _Answer(200, json.dumps(listing, separators=(",", ":")).encode())
                else:
                    answer = _error(404, "NotFound", "Not Found")
        if scripted is not None and scripted.drop:
            handler.close_connection = True
            return
        if scripted is not None and scripted.delay_s:
            time.sleep(scripted.delay_s)
        if scripted is not None and scripted.status:
            extra = (
                {} if scripted.retry_after is None else {"Retry-After": f"{scripted.retry_after:g}"}
            )
            body = scripted.body
            if body is None:
                body = ERROR_BODIES.get(scripted.status, b'{"code":"Fault","message":"fault"}')
            answer = _Answer(scripted.status, body, extra)
        assert answer is not None
        self._write(handler, answer, limit_headers)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, answer: _Answer, extra: dict[str, str]) -> None:
        kind = "text/html" if answer.body.startswith(b"<") else "application/json; charset=utf-8"
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
            for name, value in {**extra, **answer.headers}.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            handler.close_connection = True
