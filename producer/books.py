"""Order books the spread sampler reads: Binance kept live from depth streams, BTCMarkets polled.

``BinanceBooks`` holds one ``BinanceBookSync`` per symbol, fed from one combined-stream connection to
``<symbol>@depth@100ms`` (``producer.stream``'s loop: reconnects with backoff, silence watchdog). A
book that needs a snapshot (at start, after a skipped update id, after a crossed book) gets one from
``GET /api/v3/depth?limit=1000`` in a worker thread while the receive loop goes on and the sync
buffers the events; a refused snapshot (older than the buffered events, crossed) or a failed request
is retried after a backoff. ``views()`` gives each valid book with its update id and the event time
``E`` of the depth update that brought it there: the last one applied, or right after a snapshot the
buffered update ending exactly at its ``lastUpdateId``. A book at a snapshot's id with no such update
has no time and is not shown until the next update lands; nor are books while the stream has been
silent past ``silence_timeout_s`` (the connection is being replaced; they may be stale).

``BtcmBooks`` fetches every market's ``GET /v3/markets/{id}/orderbook`` per tick in worker threads,
a few at a time, and waits for them until the tick's deadline. A fetch still running then (the
client retries 429s and 5xx with backoff) stays in flight, that market is not fetched again until
it ends, and its book is used at the tick it arrives in. The book's time is its ``snapshotId``
(µs since the epoch, per BTCMarkets and CCXT) in ms; when that does not read as a time within a
day of receipt, the receive time is used instead (``btcm_ts_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from producer.backoff import Backoff
from producer.stream import BinanceStream, Clock
from tasks.binance_rest import BinanceRest
from tasks.btcmarkets_rest import BtcMarketsRest, OrderBookSnapshot
from tasks.core.orderbook import (
    BinanceBookSync,
    Book,
    SyncCounters,
    SyncStatus,
    parse_depth_snapshot,
    parse_depth_update,
)
from tasks.errors import CandleflowError
from tasks.settings import Settings

log = logging.getLogger(__name__)

DEPTH_STREAM_SUFFIX = "@depth@100ms"
SNAPSHOT_LIMIT = 1000  # levels a side of each REST snapshot (weight 50)
SNAPSHOT_RETRY = Backoff(base_s=0.25, cap_s=30.0)
BTCM_CONCURRENCY = 4  # BTCMarkets requests in flight at once
STOP_GRACE_S = 2.0  # on stop, the tick's BTCMarkets fetches still get this long to finish
_DAY_MS = 86_400_000
_YIELD_EVERY_FRAMES = 256
_MALFORMED_LOGGED_FIRST = 10
_MALFORMED_LOG_EVERY = 1000


@dataclass(frozen=True, slots=True)
class BookView:
    """A valid book to sample: the venue saw it at ``ts_ms``; ``source_id`` identifies it there."""

    market: str
    venue: str
    book: Book
    ts_ms: int
    source_id: int


def depth_stream_url(base_url: str, symbols: Sequence[str]) -> str:
    """``wss://.../stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms``."""
    streams = "/".join(f"{s.lower()}{DEPTH_STREAM_SUFFIX}" for s in symbols)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"


def btcm_ts_ms(snapshot_id: int, received_ns: int) -> int:
    """A BTCMarkets book's time in ms: its snapshotId (µs) if within a day of receipt, else receipt."""
    received_ms = received_ns // 1_000_000
    stamped_ms = snapshot_id // 1000
    return stamped_ms if abs(stamped_ms - received_ms) <= _DAY_MS else received_ms


class DepthStream(BinanceStream):
    """``producer.stream``'s connection loop on the symbols' ``@depth@100ms`` streams."""

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(settings, symbols, clock=clock, rng=rng)
        self.url = depth_stream_url(settings.binance_ws_url, symbols)


@dataclass(eq=False)
class _Symbol:
    sync: BinanceBookSync
    event_ms: int | None = None  # E of the update that brought the book to its update id
    # (u, E) of the events the sync buffers, to find E once a snapshot replays them.
    pending: deque[tuple[int, int]] = field(default_factory=deque)
    fetch: asyncio.Task[None] | None = None


class SnapshotSource(Protocol):
    """Where depth snapshots come from: ``BinanceRest``, or the captures when replaying."""

    def depth_snapshot(self, symbol: str, limit: int = ...) -> dict[str, Any]: ...


class FrameSource(Protocol):
    """Where depth frames come from: ``DepthStream``, or the captures when replaying."""

    def frames(self) -> AsyncGenerator[str, None]: ...

    def stop(self) -> None: ...


class BinanceBooks:
    """Live local books of Binance symbols; ``run()`` until ``stop()``, ``views()`` at any time."""

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        rest: SnapshotSource | BinanceRest,
        *,
        stream: FrameSource | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        retry: Backoff = SNAPSHOT_RETRY,
    ) -> None:
        self.stream: FrameSource = stream or DepthStream(settings, symbols, clock=clock, rng=rng)
        self._symbols = {s: _Symbol(BinanceBookSync(s)) for s in symbols}
        self._rest = rest
        self._clock = clock
        self._rng = rng or random.Random()
        self._retry = retry
        self._stale_after_s = settings.silence_timeout_s
        self._last_frame_at: float | None = None
        self._stopping = asyncio.Event()
        self.malformed = 0

    @property
    def counters(self) -> dict[str, SyncCounters]:
        """Each symbol's sync counters (applied, dropped, resyncs, refused snapshots, buffered)."""
        return {s: m.sync.counters for s, m in self._symbols.items()}

    def stop(self) -> None:
        self._stopping.set()
        self.stream.stop()

    async def run(self) -> None:
        """Keep the books until ``stop()``; raises ``StreamConnectError`` if Binance is unreachable."""
        try:
            async with aclosing(self.stream.frames()) as frames:
                count = 0
                async for text in frames:
                    self._last_frame_at = self._clock()
                    self._receive(text)
                    count += 1
                    if count % _YIELD_EVERY_FRAMES == 0:
                        await asyncio.sleep(0)  # let ticks and snapshot results in
        finally:
            self._stopping.set()
            fetches = [m.fetch for m in self._symbols.values() if m.fetch is not None]
            for task in fetches:
                task.cancel()
            await asyncio.gather(*fetches, return_exceptions=True)

    def views(self) -> tuple[list[BookView], dict[str, str]]:
        """The valid books now, and why each other symbol has none (for the tick's stats)."""
        views: list[BookView] = []
        missing: dict[str, str] = {}
        quiet = None if self._last_frame_at is None else self._clock() - self._last_frame_at
        for symbol, state in self._symbols.items():
            book, update_id = state.sync.book, state.sync.last_update_id  # book: a copy
            if book is None or update_id is None:
                missing[symbol] = "syncing"
            elif state.event_ms is None:
                missing[symbol] = "at a snapshot's update id, no depth update applied yet"
            elif quiet is not None and quiet > self._stale_after_s:
                missing[symbol] = f"stream silent for {quiet:.1f}s, the book may be stale"
            else:
                views.append(BookView(symbol, "binance", book, state.event_ms, update_id))
        return views, missing

    def _receive(self, text: str) -> None:
        try:
            envelope = json.loads(text)
            stream = envelope["stream"]
            if not isinstance(stream, str) or not stream.endswith(DEPTH_STREAM_SUFFIX):
                raise ValueError(f"not a depth stream: {stream!r}")
            event = parse_depth_update(envelope["data"])
            state = self._symbols[event.symbol]
        except (ValueError, KeyError, TypeError) as exc:
            self.malformed += 1
            n = self.malformed
            if n <= _MALFORMED_LOGGED_FIRST or n % _MALFORMED_LOG_EVERY == 0:
                log.warning(
                    "skipping a malformed depth frame (%d so far): %r: %.200s", n, exc, text
                )
            return
        sync = state.sync
        before = sync.last_update_id
        status = sync.on_event(event)
        if status is SyncStatus.SYNCED:
            if sync.last_update_id != before:
                state.event_ms = event.event_time
        elif status is SyncStatus.WAITING:
            state.pending.append((event.final_update_id, event.event_time))
            while len(state.pending) > sync.counters.buffered:
                state.pending.popleft()  # the sync dropped its oldest buffered events too
        else:
            state.event_ms = None
            state.pending = deque([(event.final_update_id, event.event_time)])
            if status is SyncStatus.GAP:
                log.warning(
                    "%s depth update %d-%d skips update ids after %d: a frame was lost (a dropped "
                    "connection, or this process falling behind); resyncing the book from a REST "
                    "snapshot. Frequent resyncs mean an unreliable network or a starved process.",
                    event.symbol,
                    event.first_update_id,
                    event.final_update_id,
                    before,
                )
            else:
                log.warning(
                    "%s book came out crossed at update id %d, so it is wrong; resyncing it from "
                    "a REST snapshot (report it if this repeats: Binance's own book never crosses)",
                    event.symbol,
                    event.final_update_id,
                )
        if sync.needs_snapshot and state.fetch is None and not self._stopping.is_set():
            state.fetch = asyncio.create_task(self._resync(state), name=f"snapshot-{event.symbol}")

    async def _resync(self, state: _Symbol) -> None:
        """Fetch snapshots until the book is valid again (or the books stop)."""
        symbol = state.sync.symbol
        failures = 0
        try:
            while state.sync.needs_snapshot and not self._stopping.is_set():
                if failures:
                    await self._pause(self._retry.delay(failures - 1, self._rng))
                    if self._stopping.is_set():
                        return
                try:
                    raw = await asyncio.to_thread(self._rest.depth_snapshot, symbol, SNAPSHOT_LIMIT)
                    snapshot = parse_depth_snapshot(raw)
                except (CandleflowError, ValueError, httpx.HTTPError) as exc:
                    failures += 1
                    log.warning("%s depth snapshot failed (attempt %d): %s", symbol, failures, exc)
                    continue
                status = state.sync.on_snapshot(snapshot)
                if not state.sync.needs_snapshot:
                    last = state.sync.last_update_id
                    state.event_ms = next((e for u, e in state.pending if u == last), None)
                    state.pending.clear()
                    log.info("%s book synced at update id %s", symbol, last)
                    return
                failures += 1
                why = {
                    SyncStatus.SNAPSHOT_TOO_OLD: "is older than the first buffered update",
                    SyncStatus.CROSSED: "is crossed",
                }.get(status, "left a gap in the buffered updates")
                log.info(
                    "%s depth snapshot at update id %d %s; fetching another",
                    symbol,
                    snapshot.last_update_id,
                    why,
                )
                while len(state.pending) > state.sync.counters.buffered:
                    state.pending.popleft()  # a gap in the replay left only the events after it
        finally:
            state.fetch = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):  # the pause ran out before a stop was asked
            await asyncio.wait_for(self._stopping.wait(), seconds)


class BtcmBooks:
    """BTCMarkets books fetched per tick, ``concurrency`` requests at a time."""

    def __init__(
        self,
        markets: Sequence[str],
        rest: BtcMarketsRest,
        *,
        concurrency: int = BTCM_CONCURRENCY,
    ) -> None:
        self.markets = list(markets)
        self._rest = rest
        self._limit = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, asyncio.Task[OrderBookSnapshot]] = {}
        self.failures = 0

    async def fetch(
        self, timeout_s: float, stop: asyncio.Event
    ) -> tuple[list[BookView], dict[str, str]]:
        """Every market's book fetched within ``timeout_s`` (or soon after ``stop``), and why the
        others have none."""
        for market in self.markets:
            if market not in self._in_flight:
                self._in_flight[market] = asyncio.create_task(
                    self._fetch(market), name=f"btcm-{market}"
                )
        await _wait_all(set(self._in_flight.values()), stop, timeout_s)
        views: list[BookView] = []
        missing: dict[str, str] = {}
        for market in self.markets:
            task = self._in_flight[market]
            if not task.done():
                missing[market] = "fetch still running"
                continue
            del self._in_flight[market]
            try:
                snapshot = task.result()
            except (CandleflowError, ValueError, httpx.HTTPError) as exc:
                self.failures += 1
                log.warning("BTCMarkets %s book not fetched; no sample this tick: %s", market, exc)
                missing[market] = "fetch failed"
                continue
            ts_ms = btcm_ts_ms(snapshot.snapshot_id, snapshot.ts_init)
            views.append(
                BookView(market, "btcmarkets", snapshot.to_book(), ts_ms, snapshot.snapshot_id)
            )
        return views, missing

    async def close(self) -> None:
        """Give up on fetches still running (their threads end on their own)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()

    async def _fetch(self, market: str) -> OrderBookSnapshot:
        async with self._limit:
            return await asyncio.to_thread(self._rest.orderbook, market)


async def _wait_all(
    tasks: set[asyncio.Task[OrderBookSnapshot]], stop: asyncio.Event, timeout_s: float
) -> None:
    """Until every task is done or ``timeout_s`` has passed; at most ``STOP_GRACE_S`` after ``stop``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    stopper = asyncio.create_task(stop.wait())
    pending: set[asyncio.Task[Any]] = {*tasks, stopper}
    try:
        while pending - {stopper}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper in done:
                deadline = min(deadline, loop.time() + STOP_GRACE_S)
    finally:
        stopper.cancel()
