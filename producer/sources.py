"""Where the producer's frames come from: Binance live, or capture files replayed.

Both yield combined-stream frames as text, exactly as the websocket delivered them, and both stop on
``stop()`` after handing on what they already have. ``binance_reachable`` lets start scripts choose
between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import heapq
import logging
import random
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as connect_sync

from producer.parse import CapturedFrame, MalformedFrame, parse_capture_line
from producer.stream import BinanceStream, Clock, Sleep, combined_stream_url
from tasks.settings import Settings

log = logging.getLogger(__name__)

# At full replay speed, give other tasks (age flushes, SQS senders) a turn this often.
_YIELD_EVERY_FRAMES = 256
# Pacing waits shorter than this are folded into later ones instead of sleeping each time.
_MIN_SLEEP_S = 0.001


class Source(Protocol):
    """Anything the producer can read frames from."""

    description: str

    def frames(self) -> AsyncGenerator[str, None]: ...

    def stop(self) -> None: ...


class BinanceSource:
    """Live trades from Binance's combined streams (reconnecting; see ``producer.stream``)."""

    def __init__(
        self,
        settings: Settings,
        symbols: Sequence[str],
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.stream = BinanceStream(settings, symbols, clock=clock, rng=rng)
        self.description = f"Binance {self.stream.url}"

    def frames(self) -> AsyncGenerator[str, None]:
        return self.stream.frames()

    def stop(self) -> None:
        self.stream.stop()


class ReplaySource:
    """Frames of capture files merged in receive-time order and paced like the recording.

    ``speed`` divides the recorded gaps (2.0 replays twice as fast); ``None`` replays without pausing.
    ``symbols`` keeps only those symbols' frames (all when ``None``).
    """

    def __init__(
        self,
        files: Sequence[Path],
        speed: float | None,
        *,
        symbols: Sequence[str] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(
                f"replay speed must be positive or None (as fast as possible), got {speed}"
            )
        self.files = list(files)
        self.speed = speed
        self.description = f"replay of {len(self.files)} file(s) at speed {speed or 'max'}"
        self._prefixes = None if symbols is None else tuple(f"{s.lower()}@" for s in symbols)
        self._clock = clock
        self._sleep = sleep
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def frames(self) -> AsyncGenerator[str, None]:
        merged = heapq.merge(*(self._read(path) for path in self.files), key=_recv_ns)
        started_at = 0.0
        first_ns: int | None = None
        for count, frame in enumerate(merged):
            if self._stopping.is_set():
                return
            if self._prefixes is not None and not frame.stream.startswith(self._prefixes):
                continue
            if self.speed is None or first_ns is None:
                if first_ns is None:
                    first_ns, started_at = frame.recv_ns, self._clock()
                if count % _YIELD_EVERY_FRAMES == 0:
                    await asyncio.sleep(0)
            else:
                due = started_at + (frame.recv_ns - first_ns) / 1e9 / self.speed
                wait = due - self._clock()
                if wait >= _MIN_SLEEP_S:
                    await self._pause(wait)
                    if self._stopping.is_set():
                        return
                elif count % _YIELD_EVERY_FRAMES == 0:
                    await asyncio.sleep(0)
            yield frame.text

    async def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):  # the pause ran out before a stop was asked
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _read(self, path: Path) -> Iterator[CapturedFrame]:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    frame = parse_capture_line(line)
                except MalformedFrame as exc:
                    log.warning("skipping %s line %d: %s", path, number, exc)
                    continue
                if frame is not None:
                    yield frame


def _recv_ns(frame: CapturedFrame) -> int:
    return frame.recv_ns


def binance_reachable(url: str, timeout: float) -> bool:
    """Whether a websocket to Binance's combined streams at ``url`` opens within ``timeout`` seconds."""
    target = combined_stream_url(url, ["BTCUSDT"])
    try:
        with connect_sync(target, open_timeout=timeout, close_timeout=timeout):
            return True
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        log.debug("Binance is not reachable at %s: %s", target, exc)
        return False
