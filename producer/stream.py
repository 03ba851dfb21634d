"""The connection loop for Binance's combined streams: one unbroken iterator of frames.

Binance closes every connection after 24 h, may drop one at any time, and a half-dead TCP connection can
simply go quiet. ``BinanceStream.frames()`` hides all three:

- a dropped connection is reopened after an exponential backoff with jitter (capped at
  ``reconnect_max_backoff_s``); the first wait after a healthy connection is short;
- a connection silent for ``silence_timeout_s`` is closed and reopened (the watchdog);
- a connection older than ``max_connection_age_s`` is replaced *before* it is closed: the new one is
  opened and streaming first, so the two overlap. Overlap means duplicate trades, which the pipeline
  drops by trade id; a gap would mean lost trades.

Pings are answered by ``websockets`` itself. No venue parsing happens here; frames are passed on as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException

from producer.backoff import Backoff
from producer.parse import trade_stream
from tasks.errors import CandleflowError, ConfigError
from tasks.settings import Settings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Connect = Callable[[str], Awaitable[ClientConnection]]

_BACKOFF_BASE_S = 0.2
_OPEN_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 2.0
_BUFFER_FRAMES = 10_000


class StreamConnectError(CandleflowError):
    """Binance could not be reached at all when the stream started; names the URL and the reason."""


@dataclass
class StreamStats:
    """How the connection loop has fared, for logs and tests."""

    connections: int = 0
    failed_attempts: int = 0
    drops: int = 0
    silences: int = 0
    rotations: int = 0
    frames: int = 0


def combined_stream_url(base_url: str, symbols: Sequence[str]) -> str:
    """``wss://.../stream?streams=btcusdt@trade/ethusdt@trade`` for the given symbols."""
    if not symbols:
        raise ConfigError("no symbols to stream (setting CANDLEFLOW_SYMBOLS)")
    streams = "/".join(trade_stream(s) for s in symbols)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"


def open_connection(url: str) -> Awaitable[ClientConnection]:
    """Open a websocket the way the producer wants it: bounded handshake and close, default pings."""
    return connect(url, open_timeout=_OPEN_TIMEOUT_S, close_timeout=_CLOSE_TIMEOUT_S)


@dataclass(eq=False)
class _Connection:
    ws: ClientConnection
    number: int
    opened_at: float
    last_frame_at: float
    frames: int = 0
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class BinanceStream:
    """Frames of the symbols' trade streams, across drops, silences and 24 h rotations, until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        *,
        first_connect_attempts: int = 3,
        connect: Connect = open_connection,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = combined_stream_url(settings.binance_ws_url, symbols)
        self.stats = StreamStats()
        self._silence_s = settings.silence_timeout_s
        self._max_age_s = settings.max_connection_age_s
        self._backoff = Backoff(
            min(_BACKOFF_BASE_S, settings.reconnect_max_backoff_s), settings.reconnect_max_backoff_s
        )
        self._healthy_after_s = settings.reconnect_max_backoff_s
        self._first_attempts = first_connect_attempts
        self._connect = connect
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._out: asyncio.Queue[str] = asyncio.Queue(maxsize=_BUFFER_FRAMES)
        self._live: set[_Connection] = set()

    def stop(self) -> None:
        """End ``frames()`` after the frames already received; connections are closed."""
        self._stopping.set()

    async def frames(self) -> AsyncGenerator[str, None]:
        """Every frame received, in arrival order; raises ``StreamConnectError`` if Binance is unreachable."""
        supervisor = asyncio.create_task(self._supervise(), name="binance-stream")
        getter: asyncio.Task[str] | None = None
        try:
            while True:
                if not self._out.empty():
                    yield self._out.get_nowait()
                    continue
                if supervisor.done():
                    break
                getter = asyncio.create_task(self._out.get())
                await asyncio.wait({getter, supervisor}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                getter.cancel()
            supervisor.result()  # re-raises StreamConnectError and the like
        finally:
            if getter is not None:
                getter.cancel()
            self.stop()
            if not supervisor.done():
                await asyncio.wait({supervisor})

    async def _supervise(self) -> None:
        failures = 0
        current: _Connection | None = None
        stop_waiter = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                try:
                    new = await self._open()
                except (OSError, TimeoutError, WebSocketException) as exc:
                    self.stats.failed_attempts += 1
                    if self.stats.connections == 0 and failures + 1 >= self._first_attempts:
                        raise StreamConnectError(
                            f"cannot connect to Binance at {self.url}: {_reason(exc)} "
                            f"(setting CANDLEFLOW_BINANCE_WS_URL; {failures + 1} attempts)"
                        ) from exc
                    await self._pause(failures, f"cannot connect to {self.url}: {_reason(exc)}")
                    failures += 1
                    continue
                if current is not None:
                    await self._overlap(new, stop_waiter)
                    if new.frames == 0 and new.reader is not None and new.reader.done():
                        # The replacement died before streaming: keep the old one, try again.
                        await self._retire(new)
                        await self._pause(failures, f"replacement #{new.number} closed at once")
                        failures += 1
                        continue
                    await self._retire(current)
                    failures = 0
                current = new
                outcome = await self._watch(current, stop_waiter)
                if outcome == "rotate":
                    self.stats.rotations += 1
                    log.info(
                        "rotating connection #%d after %.0fs",
                        current.number,
                        self._clock() - current.opened_at,
                    )
                    continue
                lived = self._clock() - current.opened_at
                number = current.number
                await self._retire(current)
                current = None
                if outcome == "stop":
                    break
                if lived >= self._healthy_after_s:
                    failures = 0
                await self._pause(failures, f"connection #{number} {outcome}")
                failures += 1
        finally:
            stop_waiter.cancel()
            for conn in list(self._live):
                await self._retire(conn)

    async def _open(self) -> _Connection:
        if not self.url.startswith(("ws://", "wss://")):
            raise ConfigError(
                f"setting CANDLEFLOW_BINANCE_WS_URL must be ws:// or wss://: {self.url}"
            )
        try:
            ws = await self._connect(self.url)
        except InvalidURI as exc:
            raise ConfigError(f"setting CANDLEFLOW_BINANCE_WS_URL is not a URL: {exc}") from exc
        self.stats.connections += 1
        now = self._clock()
        conn = _Connection(ws, self.stats.connections, opened_at=now, last_frame_at=now)
        conn.reader = asyncio.create_task(self._read(conn), name=f"binance-read-{conn.number}")
        self._live.add(conn)
        log.info("connected to %s (connection #%d)", self.url, conn.number)
        return conn

    async def _read(self, conn: _Connection) -> None:
        try:
            async for message in conn.ws:
                conn.last_frame_at = self._clock()
                conn.frames += 1
                self.stats.frames += 1
                conn.first_frame.set()
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                await self._out.put(text)
        except ConnectionClosed as exc:
            log.warning("connection #%d to %s lost: %s", conn.number, self.url, _reason(exc))

    async def _watch(self, conn: _Connection, stop_waiter: asyncio.Task[bool]) -> str:
        """Wait until the connection ends (``'dropped'``), goes quiet (``'silent'``), is due for
        rotation (``'rotate'``) or the stream is stopped (``'stop'``)."""
        assert conn.reader is not None
        while True:
            if self._stopping.is_set():
                return "stop"
            if conn.reader.done():
                self.stats.drops += 1
                return "dropped"
            now = self._clock()
            quiet = now - conn.last_frame_at
            if quiet >= self._silence_s:
                self.stats.silences += 1
                log.warning(
                    "connection #%d silent for %.1fs (setting CANDLEFLOW_SILENCE_TIMEOUT_S)",
                    conn.number,
                    quiet,
                )
                return "silent"
            age = now - conn.opened_at
            if age >= self._max_age_s:
                return "rotate"
            timeout = min(self._silence_s - quiet, self._max_age_s - age)
            await asyncio.wait(
                {conn.reader, stop_waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )

    async def _overlap(self, new: _Connection, stop_waiter: asyncio.Task[bool]) -> None:
        """Let the new connection deliver its first frame (or fail, or time out) before the old closes."""
        assert new.reader is not None
        first = asyncio.create_task(new.first_frame.wait())
        try:
            await asyncio.wait(
                {first, new.reader, stop_waiter},
                timeout=self._silence_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            first.cancel()

    async def _retire(self, conn: _Connection) -> None:
        """Close a connection; its reader still hands on every frame that had already arrived."""
        self._live.discard(conn)
        await conn.ws.close()
        if conn.reader is not None:
            await asyncio.wait({conn.reader}, timeout=_CLOSE_TIMEOUT_S)
            if not conn.reader.done():
                conn.reader.cancel()
        log.info("closed connection #%d after %d frames", conn.number, conn.frames)

    async def _pause(self, failures: int, why: str) -> None:
        delay = self._backoff.delay(failures, self._rng)
        log.warning("reconnecting to Binance in %.2fs (%s)", delay, why)
        if self._sleep is not None:
            await self._sleep(delay)
            return
        with contextlib.suppress(TimeoutError):  # the pause ran out before a stop was asked
            await asyncio.wait_for(self._stopping.wait(), delay)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
