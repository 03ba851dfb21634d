"""A loopback Binance spot REST API: a real HTTP server answering from recorded trades.

It serves what the backfill uses, as Binance does (https://developers.binance.com/docs/
binance-spot-api-docs/rest-api/market-data-endpoints):

- ``GET /api/v3/historicalTrades?symbol=&fromId=&limit=``: a compact JSON array of
  ``{"id","price","qty","quoteQty","time","isBuyerMaker","isBestMatch"}``, oldest first; ``limit``
  defaults to 500 (1..1000), no ``fromId`` gives the most recent trades;
- ``GET /api/v3/aggTrades?symbol=&fromId=&startTime=&endTime=&limit=``: consecutive trades with the
  same price, side and time make one ``{"a","p","q","f","l","T","m","M"}`` record, numbered from 1;
- ``GET /api/v3/depth?symbol=&limit=``: ``{"lastUpdateId","bids","asks"}``, the best ``limit``
  (default 100, at most 5000) ``[price, qty]`` string pairs of each side. A symbol's book is what
  ``set_depth`` scripted, else the real REST depth snapshot recorded in the symbol's capture
  (``data/binance-ws/spot_<symbol>_20240808.gz``, 1,000 levels a side), else the symbol is unknown;
- ``GET /api/v3/ping``: ``{}``.

``quoteQty`` is the exact price * qty without trailing zeros, as Binance prints it (``"48.000012"``).
An unknown symbol gets HTTP 400 ``{"code":-1121,"msg":"Invalid symbol."}``; a request header
``X-MBX-TIME-UNIT: MICROSECOND`` gives times in µs. Every answer carries ``X-MBX-USED-WEIGHT-1M``: the
request weights (25, 4, 1, and 5 to 250 for depth by ``limit``) summed over the current minute of ``clock``; a request that would pass
``weight_limit`` gets Binance's 429 with ``Retry-After`` up to the next minute.

Faults are opt-in and consumed, one per request, before normal answers: ``fail_next(429,
retry_after=1)``, ``fail_next(500)``, ``fail_next(418, retry_after=120)``, ``stall_next(seconds)`` (answer
late), ``drop_next()`` (close the connection without an answer). ``requests`` logs every request.

    with FakeBinanceRest(capture_trades("spot_btcusdt_20240808.gz")) as fake:
        httpx.get(f"{fake.url}/api/v3/historicalTrades", params={"symbol": "BTCUSDT"})
"""

from __future__ import annotations

import bisect
import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

import polars as pl

from tasks.core.binance_rest import DEPTH_DEFAULT_LIMIT, DEPTH_MAX_LIMIT, depth_weight
from tests.builders import DATA, Trade
from tests.fakes.loopback import LoopbackServer

WEIGHTS = {"/api/v3/historicalTrades": 25, "/api/v3/aggTrades": 4, "/api/v3/ping": 1}
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_EXACT = Context(prec=100)  # p * q of any 38-digit decimals, unrounded

ERROR_BODIES = {
    418: {
        "code": -1003,
        "msg": "Way too much request weight used; IP banned until 1723161600000. "
        "Please use WebSocket Streams for live updates to avoid bans.",
    },
    429: {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
    },
    500: {"code": -1000, "msg": "An unknown error occurred while processing the request."},
    503: {"code": -1008, "msg": "Server is currently overloaded with other requests."},
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server received it; header names are lower case."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Scripted:
    """A fault answered instead of the normal answer (``status`` 0: answer normally)."""

    status: int = 0
    body: bytes | None = None
    retry_after: float | None = None
    delay_s: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Depth:
    """A depth snapshot as Binance prints it: ``[price, qty]`` strings, best level first."""

    last_update_id: int
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]

    def answer(self, limit: int) -> dict[str, object]:
        return {
            "lastUpdateId": self.last_update_id,
            "bids": [list(level) for level in self.bids[:limit]],
            "asks": [list(level) for level in self.asks[:limit]],
        }


def capture_depth(symbol: str) -> Depth | None:
    """The REST depth snapshot recorded in ``symbol``'s capture, or None when there is none."""
    path = DATA / f"spot_{symbol.lower()}_20240808.gz"
    if not symbol.isalnum() or not path.exists():
        return None
    with gzip.open(path, "rt") as fh:
        for row in fh:
            _, _, frame = row.partition(" ")
            if frame.startswith('{"lastUpdateId"'):
                book = json.loads(frame)
                return Depth(
                    book["lastUpdateId"],
                    tuple((p, q) for p, q in book["bids"]),
                    tuple((p, q) for p, q in book["asks"]),
                )
    return None


def request_weight(path: str, params: Mapping[str, str]) -> int:
    """What Binance counts for a request: fixed per path, by ``limit`` for depth."""
    if path == "/api/v3/depth":
        limit = params.get("limit", "")
        n = int(limit) if limit.isdigit() else DEPTH_DEFAULT_LIMIT
        return depth_weight(min(max(n, 1), DEPTH_MAX_LIMIT))
    return WEIGHTS.get(path, 1)


@dataclass(frozen=True, slots=True)
class AggTrade:
    a: int
    p: str
    q: Decimal
    f: int
    l: int  # noqa: E741 - Binance's field name
    T: int
    m: bool


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _trades_of(trades: Sequence[Trade] | pl.DataFrame) -> list[Trade]:
    if isinstance(trades, pl.DataFrame):
        return [
            Trade(
                symbol=row["symbol"],
                trade_id=row["trade_id"],
                price=row["price"] if isinstance(row["price"], str) else format(row["price"], "f"),
                quantity=row["quantity"]
                if isinstance(row["quantity"], str)
                else format(row["quantity"], "f"),
                trade_time=row["trade_time"],
                is_buyer_maker=row["is_buyer_maker"],
            )
            for row in trades.iter_rows(named=True)
        ]
    return list(trades)


def quote_qty(price: str, qty: str) -> str:
    """Binance's ``quoteQty``: the exact product, trailing zeros trimmed, no exponent."""
    return format(_EXACT.multiply(Decimal(price), Decimal(qty)).normalize(_EXACT), "f")


def aggregate(trades: Sequence[Trade]) -> list[AggTrade]:
    """Consecutive trades (by id) with the same price, side and time, as one record each."""
    out: list[AggTrade] = []
    for t in trades:
        last = out[-1] if out else None
        if (
            last is not None
            and last.l + 1 == t.trade_id
            and (last.p, last.m, last.T) == (t.price, t.is_buyer_maker, t.trade_time)
        ):
            out[-1] = AggTrade(
                last.a, last.p, last.q + Decimal(t.quantity), last.f, t.trade_id, last.T, last.m
            )
        else:
            a = len(out) + 1
            out.append(
                AggTrade(
                    a,
                    t.price,
                    Decimal(t.quantity),
                    t.trade_id,
                    t.trade_id,
                    t.trade_time,
                    t.is_buyer_maker,
                )
            )
    return out


class _Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class FakeBinanceRest:
    """The server and its state; tests read ``url`` and ``requests`` and script faults.

    ``clock`` (epoch seconds) decides the minute the used weight counts in; ``used_weight`` may be
    set to start a minute near the limit.
    """

    def __init__(
        self,
        trades: Sequence[Trade] | pl.DataFrame,
        *,
        clock: Callable[[], float] = time.time,
        weight_limit: int = 6000,
        depths: Mapping[str, Depth] | None = None,
    ) -> None:
        by_symbol: dict[str, dict[int, Trade]] = {}
        for t in _trades_of(trades):
            by_symbol.setdefault(t.symbol, {}).setdefault(t.trade_id, t)
        self.trades = {
            s: sorted(ts.values(), key=lambda t: t.trade_id) for s, ts in by_symbol.items()
        }
        self._ids = {s: [t.trade_id for t in ts] for s, ts in self.trades.items()}
        self.aggs = {s: aggregate(ts) for s, ts in self.trades.items()}
        self._depths: dict[str, Depth | None] = dict(depths or {})
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.weight_limit = weight_limit
        self._clock = clock
        self._lock = threading.Lock()
        self._script: deque[Scripted] = deque()
        self._minute = int(clock() // 60)
        self._used = 0
        self._server: LoopbackServer | None = None

    # --- state tests drive ---

    @property
    def used_weight(self) -> int:
        with self._lock:
            self._roll_minute()
            return self._used

    @used_weight.setter
    def used_weight(self, value: int) -> None:
        with self._lock:
            self._minute = int(self._clock() // 60)
            self._used = value

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        body: bytes | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (Binance's error JSON unless ``body``);
        ``retry_after`` sets the ``Retry-After`` header (seconds)."""
        with self._lock:
            self._script.extend([Scripted(status, body, retry_after)] * times)

    def set_depth(
        self,
        symbol: str,
        last_update_id: int,
        bids: Sequence[tuple[str, str]],
        asks: Sequence[tuple[str, str]],
    ) -> None:
        """Serve this book (strings as given, best first) for ``symbol``'s depth from now on."""
        with self._lock:
            self._depths[symbol] = Depth(last_update_id, tuple(bids), tuple(asks))

    def depth(self, symbol: str) -> Depth | None:
        """``symbol``'s book: scripted, else its capture's snapshot (read once), else None."""
        with self._lock:
            if symbol not in self._depths:
                self._depths[symbol] = capture_depth(symbol)
            return self._depths[symbol]

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` requests normally, but only after ``seconds``."""
        with self._lock:
            self._script.extend([Scripted(delay_s=seconds)] * times)

    def drop_next(self, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` requests without answering."""
        with self._lock:
            self._script.extend([Scripted(drop=True)] * times)

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # --- server life ---

    def __enter__(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Binance
            server_version = "fake-binance-rest"

            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler, "fake-binance-rest")
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

    # --- answering ---

    def _roll_minute(self) -> None:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        weight = request_weight(url.path, params)
        with self._lock:
            self.requests.append(RecordedRequest(url.path, params, headers))
            self._roll_minute()
            over = self._used + weight > self.weight_limit
            if not over:
                self._used += weight
            used = self._used
            scripted = self._script.popleft() if self._script else None
            to_next_minute = 60 - int(self._clock() % 60)
        if scripted is not None and scripted.drop:
            handler.close_connection = True
            return
        if scripted is not None and scripted.delay_s:
            time.sleep(scripted.delay_s)
        if scripted is not None and scripted.status:
            extra = {}
            if scripted.retry_after is not None:
                extra["Retry-After"] = f"{scripted.retry_after:g}"
            default = ERROR_BODIES.get(scripted.status, {"code": -1000, "msg": "Fault."})
            body = scripted.body if scripted.body is not None else _compact(default)
            self._write(handler, scripted.status, body, used, extra)
            return
        if over:
            retry = {"Retry-After": str(to_next_minute)}
            self._write(handler, 429, _compact(ERROR_BODIES[429]), used, retry)
            return
        micros = headers.get("x-mbx-time-unit", "").upper() == "MICROSECOND"
        try:
            answer = self.answer(url.path, params, micros)
        except _Refused as refused:
            self._write(handler, 400, _compact({"code": refused.code, "msg": refused.msg}), used)
            return
        self._write(handler, answer.status, _compact(answer.body), used, answer.headers)

    @staticmethod
    def _write(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        used: int,
        extra: dict[str, str] | None = None,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json;charset=UTF-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("X-MBX-USED-WEIGHT", str(used))
            handler.send_header("X-MBX-USED-WEIGHT-1M", str(used))
            for name, value in (extra or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            handler.close_connection = True

    def answer(self, path: str, params: dict[str, str], micros: bool = False) -> _Answer:
        """The normal answer to a GET (no faults, no weight), or ``_Refused`` for a 400."""
        if path == "/api/v3/ping":
            return _Answer(200, {})
        if path == "/api/v3/historicalTrades":
            return _Answer(200, self.historical_trades(params, micros))
        if path == "/api/v3/aggTrades":
            return _Answer(200, self.agg_trades(params, micros))
        if path == "/api/v3/depth":
            return _Answer(200, self.depth_answer(params))
        return _Answer(404, {"code": -1, "msg": f"the fake serves no {path}"})

    def _symbol(self, params: dict[str, str]) -> str:
        symbol = params.get("symbol", "")
        if not symbol:
            raise _Refused(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        if symbol not in self.trades:
            raise _Refused(-1121, "Invalid symbol.")
        return symbol

    @staticmethod
    def _int(params: dict[str, str], name: str, low: int = 0, high: int = 2**63 - 1) -> int | None:
        if name not in params:
            return None
        text = params[name]
        if not text.isdigit() or not low <= int(text) <= high:
            raise _Refused(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is '{low}..{high}'.",
            )
        return int(text)

    def _limit(self, params: dict[str, str]) -> int:
        limit = self._int(params, "limit", 1, MAX_LIMIT)
        return DEFAULT_LIMIT if limit is None else limit

    def depth_answer(self, params: dict[str, str]) -> dict[str, object]:
        symbol = params.get("symbol", "")
        if not symbol:
            self._symbol(params)  # Binance's -1102
        book = self.depth(symbol)
        if book is None:
            raise _Refused(-1121, "Invalid symbol.")
        limit = self._int(params, "limit", 1)
        return book.answer(min(DEPTH_DEFAULT_LIMIT if limit is None else limit, DEPTH_MAX_LIMIT))

    def historical_trades(self, params: dict[str, str], micros: bool = False) -> list[object]:
        symbol = self._symbol(params)
        limit = self._limit(params)
        from_id = self._int(params, "fromId")
        trades = self.trades[symbol]
        if from_id is None:
            page = trades[-limit:]
        else:
            start = bisect.bisect_left(self._ids[symbol], from_id)
            page = trades[start : start + limit]
        scale = 1000 if micros else 1
        return [
            {
                "id": t.trade_id,
                "price": t.price,
                "qty": t.quantity,
                "quoteQty": quote_qty(t.price, t.quantity),
                "time": t.trade_time * scale,
                "isBuyerMaker": t.is_buyer_maker,
                "isBestMatch": True,
            }
            for t in page
        ]

    def agg_trades(self, params: dict[str, str], micros: bool = False) -> list[object]:
        symbol = self._symbol(params)
        limit = self._limit(params)
        from_id = self._int(params, "fromId")
        start = self._int(params, "startTime")
        end = self._int(params, "endTime")
        if start is not None and end is not None and start > end:
            raise _Refused(-1023, "Start time is greater than end time.")
        aggs = self.aggs[symbol]
        picked = [
            g
            for g in aggs
            if (from_id is None or g.a >= from_id)
            and (start is None or start <= g.T)
            and (end is None or end >= g.T)
        ]
        page = picked[-limit:] if (from_id, start, end) == (None, None, None) else picked[:limit]
        scale = 1000 if micros else 1
        return [
            {
                "a": g.a,
                "p": g.p,
                "q": format(g.q.quantize(Decimal("0.00000001")), "f"),
                "f": g.f,
                "l": g.l,
                "T": g.T * scale,
                "m": g.m,
                "M": True,
            }
            for g in page
        ]
