"""The producer: frames from a source, parsed into trades, packed into bodies, sent to SQS.

``run`` is the entry point for the CLI. SIGINT and SIGTERM stop the source; whatever was received is
still packed and sent before ``run`` returns, so stopping loses nothing. Every ``stats_interval_s`` a log
line reports throughput, the lag behind Binance's event time and the bodies waiting for SQS.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from producer.batching import OversizeTrade, Packer
from producer.parse import MalformedFrame, parse_frame
from producer.sinks import SqsSink
from producer.sources import Source
from producer.stream import Clock
from tasks.settings import Settings

if TYPE_CHECKING:
    from tasks.aws.clients import AwsClients

log = logging.getLogger(__name__)

# Log the first malformed frames one by one, then only every n-th, so a broken feed cannot flood logs.
_MALFORMED_LOGGED_FIRST = 10
_MALFORMED_LOG_EVERY = 1000


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """What a producer run did: trades received, SQS messages and bytes sent, trades lost, bad frames."""

    trades: int
    messages: int
    bytes: int
    dropped: int
    malformed: int


class Producer:
    """Wires a source to a packer and an SQS sink; one instance per run."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        sink: SqsSink,
        *,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        stats_interval_s: float = 10.0,
    ) -> None:
        self.source = source
        self.sink = sink
        self.packer = Packer(
            max_message_bytes=settings.max_message_bytes,
            gzip_min_bytes=settings.gzip_min_bytes,
            flush_interval_s=settings.flush_interval_s,
            max_raw_bytes=max(settings.max_body_bytes, settings.max_message_bytes),
        )
        self._clock = clock
        self._wall_clock = wall_clock
        self._stats_interval_s = stats_interval_s
        self._trades = 0
        self._malformed = 0
        self._oversize = 0
        self._last_event_ms: int | None = None
        self._stop_signals = 0
        self._reported_trades = 0
        self._reported_at = clock()

    @property
    def stats(self) -> ProducerStats:
        sent = self.sink.stats
        return ProducerStats(
            trades=self._trades,
            messages=sent.messages,
            bytes=sent.bytes,
            dropped=sent.dropped_trades + self._oversize,
            malformed=self._malformed,
        )

    def stop(self) -> None:
        """Stop reading; buffered trades are still sent before ``run()`` returns."""
        self.source.stop()

    async def run(self) -> ProducerStats:
        log.info("producing from %s", self.source.description)
        self._reported_at = self._clock()
        loop = asyncio.get_running_loop()
        handled = self._handle_signals(loop)
        try:
            async with self.sink:
                helpers = [
                    asyncio.create_task(self._flush_by_age(), name="age-flush"),
                    asyncio.create_task(self._report(), name="producer-stats"),
                ]
                try:
                    async with aclosing(self.source.frames()) as frames:
                        async for text in frames:
                            self._receive(text)
                finally:
                    for task in helpers:
                        task.cancel()
                    await asyncio.gather(*helpers, return_exceptions=True)
                    for body in self.packer.flush_all():
                        self.sink.offer(body)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
        self._log_stats("producer finished")
        return self.stats

    def _receive(self, text: str) -> None:
        try:
            trade = parse_frame(text)
        except MalformedFrame as exc:
            self._malformed += 1
            n = self._malformed
            if n <= _MALFORMED_LOGGED_FIRST or n % _MALFORMED_LOG_EVERY == 0:
                log.warning("skipping malformed frame (%d so far): %s", n, exc)
            return
        if trade is None:
            return
        self._trades += 1
        if self._last_event_ms is None or trade.event_time_ms > self._last_event_ms:
            self._last_event_ms = trade.event_time_ms
        try:
            bodies = self.packer.add(trade, self._clock())
        except OversizeTrade as exc:
            self._oversize += 1
            log.error("dropped a trade: %s", exc)
            return
        for body in bodies:
            self.sink.offer(body)

    async def _flush_by_age(self) -> None:
        """Send buffered trades once the oldest is ``flush_interval_s`` old, even with no new frames."""
        interval = self.packer.flush_interval_s
        while True:
            deadline = self.packer.deadline
            wait = interval if deadline is None else deadline - self._clock()
            await asyncio.sleep(min(max(wait, 0.0), interval))
            for body in self.packer.flush_due(self._clock()):
                self.sink.offer(body)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval_s)
            self._log_stats("producer")

    def _log_stats(self, what: str) -> None:
        stats = self.stats
        lag = (
            "n/a"
            if self._last_event_ms is None
            else "%.1fs" % (self._wall_clock() - self._last_event_ms / 1000)
        )
        now = self._clock()
        rate = (stats.trades - self._reported_trades) / max(now - self._reported_at, 1e-9)
        self._reported_trades, self._reported_at = stats.trades, now
        log.info(
            "%s: %d trades (%.1f/s), %d messages (%d bytes) sent, lag %s, %d bodies pending, "
            "%d dropped, %d malformed",
            what,
            stats.trades,
            rate,
            stats.messages,
            stats.bytes,
            lag,
            self.sink.depth,
            stats.dropped,
            stats.malformed,
        )

    def _handle_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        handled: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                log.debug("cannot handle %s here (not the main thread?)", sig.name)
                continue
            handled.append(sig)
        return handled

    def _on_signal(self, sig: signal.Signals) -> None:
        self._stop_signals += 1
        if self._stop_signals == 1:
            log.info("%s: stopping the source and sending the buffered trades", sig.name)
        else:
            log.warning("%s again: already stopping, waiting for SQS sends to finish", sig.name)
        self.stop()


def run(settings: Settings, source: Source, clients: AwsClients, queue_url: str) -> ProducerStats:
    """Produce from ``source`` into the SQS queue until the source ends or SIGINT/SIGTERM arrives."""

    async def main() -> ProducerStats:
        sink = SqsSink(clients.sqs, queue_url, queue_max=settings.send_queue_max)
        return await Producer(settings, source, sink).run()

    return asyncio.run(main())
