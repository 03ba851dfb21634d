"""The spread sampler: every ``spread_sample_interval_s``, one spread sample per market into SQS.

A long-running process like the producer (``candleflow sample``), beside it rather than inside it:

    books     Binance books kept live from depth streams, BTCMarkets books fetched per tick
    spreads   ticks: sample every valid book, one SQS message of NDJSON lines per tick

Each tick takes the Binance books as they are at the tick, fetches the BTCMarkets books (until the
next tick is due at the latest), samples each book with its market's notional
(``tasks.core.spreads.sample``; ``spread_notionals`` overrides ``spread_notional``) and offers one
message holding every sample (``tasks.core.spread_contract``; split only if it would pass
``max_message_bytes``) to ``producer.sinks.SqsSink``, which sends it in the background. A market
without a valid book at a tick (syncing, stale, fetch failed or still running) has no sample in it;
the reason is logged at DEBUG and counted. SIGINT and SIGTERM stop the sampler; the samples already
taken are still sent before ``run`` returns. Nothing here imports prefect.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.batching import Body, IdRange
from producer.books import BinanceBooks, BookView, BtcmBooks
from producer.replay_books import CaptureSnapshots, DepthReplay
from producer.sinks import SqsSink
from producer.stream import Clock
from tasks.binance_rest import BinanceRest
from tasks.btcmarkets_rest import BtcMarketsRest
from tasks.core.contract import encode_body
from tasks.core.spread_contract import sample_line
from tasks.core.spreads import sample
from tasks.errors import ConfigError
from tasks.settings import Settings

if TYPE_CHECKING:
    from tasks.aws.clients import AwsClients

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SamplerStats:
    """What a sampler run did. ``missing``: market-ticks without a valid book; ``dropped``: samples
    given up by the SQS sink; ``resyncs``: Binance books discarded after a gap or a crossed book."""

    ticks: int
    samples: int
    thin: int
    missing: int
    messages: int
    dropped: int
    resyncs: int
    malformed: int


@dataclass(frozen=True, slots=True)
class _Line:
    line: bytes
    market: str
    source_id: int
    ts_ms: int


def market_notionals(settings: Settings) -> dict[str, Decimal]:
    """The notional of every configured market; ``ConfigError`` for overrides of unknown markets."""
    markets = [*settings.spread_binance_symbols, *settings.spread_btcm_markets]
    if not markets:
        raise ConfigError(
            "nothing to sample: settings CANDLEFLOW_SPREAD_BINANCE_SYMBOLS and "
            "CANDLEFLOW_SPREAD_BTCM_MARKETS are both empty"
        )
    unknown = sorted(set(settings.spread_notionals) - set(markets))
    if unknown:
        raise ConfigError(
            f"setting CANDLEFLOW_SPREAD_NOTIONALS names {', '.join(unknown)}, which neither "
            "CANDLEFLOW_SPREAD_BINANCE_SYMBOLS nor CANDLEFLOW_SPREAD_BTCM_MARKETS lists"
        )
    return {m: settings.spread_notionals.get(m, settings.spread_notional) for m in markets}


class SpreadSampler:
    """Ticks over the books of ``binance`` and ``btcm`` into ``sink``; one instance per run.

    ``interrupt`` is set on ``stop()`` so the REST clients' retry waits end early.
    """

    def __init__(
        self,
        settings: Settings,
        sink: SqsSink,
        *,
        binance: BinanceBooks | None,
        btcm: BtcmBooks | None,
        interrupt: threading.Event | None = None,
        clock: Clock = time.monotonic,
        stats_interval_s: float = 60.0,
    ) -> None:
        self.notionals = market_notionals(settings)
        self.interval_s = settings.spread_sample_interval_s
        self.sink = sink
        self.binance = binance
        self.btcm = btcm
        self._max_message_bytes = settings.max_message_bytes
        self._gzip_min_bytes = settings.gzip_min_bytes
        self._interrupt = interrupt
        self._clock = clock
        self._stats_interval_s = stats_interval_s
        self._stopping = asyncio.Event()
        self._stop_signals = 0
        self._ticks = self._samples = self._thin = self._missing = 0

    @property
    def stats(self) -> SamplerStats:
        counters = self.binance.counters.values() if self.binance else []
        return SamplerStats(
            ticks=self._ticks,
            samples=self._samples,
            thin=self._thin,
            missing=self._missing,
            messages=self.sink.stats.messages,
            dropped=self.sink.stats.dropped_trades,
            resyncs=sum(c.resyncs for c in counters),
            malformed=self.binance.malformed if self.binance else 0,
        )

    def stop(self) -> None:
        """End after the current tick; the samples taken are still sent before ``run()`` returns."""
        self._stopping.set()
        if self._interrupt is not None:
            self._interrupt.set()
        if self.binance is not None:
            self.binance.stop()

    async def run(self, seconds: float | None = None) -> SamplerStats:
        """Sample until ``stop()``, SIGINT/SIGTERM or ``seconds``; raises ``StreamConnectError``
        when Binance cannot be reached at the start."""
        log.info("sampling spreads of %s every %.1fs", ", ".join(self.notionals), self.interval_s)
        loop = asyncio.get_running_loop()
        handled = self._handle_signals(loop)
        timer = None if seconds is None else loop.call_later(seconds, self.stop)
        failure: BaseException | None = None
        try:
            async with self.sink:
                feeder = None
                if self.binance is not None:
                    feeder = asyncio.create_task(self.binance.run(), name="binance-books")
                reporter = asyncio.create_task(self._report(), name="sampler-stats")
                try:
                    await self._tick_loop(feeder)
                finally:
                    self.stop()
                    reporter.cancel()
                    if self.btcm is not None:
                        await self.btcm.close()
                    if feeder is not None:
                        await asyncio.wait({feeder})
                        failure = None if feeder.cancelled() else feeder.exception()
                    await asyncio.gather(reporter, return_exceptions=True)
        finally:
            if timer is not None:
                timer.cancel()
            for sig in handled:
                loop.remove_signal_handler(sig)
        self._log_stats("spread sampler finished")
        if failure is not None:
            raise failure
        return self.stats

    async def _tick_loop(self, feeder: asyncio.Task[None] | None) -> None:
        next_at = self._clock() + self.interval_s
        while not self._stopping.is_set():
            stopper = asyncio.create_task(self._stopping.wait())
            waiters: set[asyncio.Task[Any]] = {stopper}
            if feeder is not None:
                waiters.add(feeder)
            try:
                await asyncio.wait(
                    waiters,
                    timeout=max(next_at - self._clock(), 0.0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                stopper.cancel()
            if self._stopping.is_set() or (feeder is not None and feeder.done()):
                return
            await self._tick(next_at + self.interval_s)
            now = self._clock()
            next_at += self.interval_s
            if next_at <= now:  # the tick overran: skip the ticks missed, keep the phase
                next_at += self.interval_s * (int((now - next_at) / self.interval_s) + 1)

    async def _tick(self, due_next: float) -> None:
        self._ticks += 1
        views: list[BookView] = []
        missing: dict[str, str] = {}
        if self.binance is not None:
            views, missing = self.binance.views()
        if self.btcm is not None:
            fetched, failed = await self.btcm.fetch(
                max(due_next - self._clock(), 0.0), self._stopping
            )
            views += fetched
            missing.update(failed)
        lines: list[_Line] = []
        for view in views:
            try:
                taken = sample(view.market, view.book, self.notionals[view.market], view.ts_ms)
            except ValueError as exc:  # a crossed book; the books never hand one out
                log.error("cannot sample the %s book: %s", view.market, exc)
                missing[view.market] = "unsampleable book"
                continue
            self._thin += taken.thin
            line = sample_line(taken, view.venue, view.source_id)
            lines.append(_Line(line, view.market, view.source_id, view.ts_ms))
        for market, why in missing.items():
            log.debug("no %s sample this tick: %s", market, why)
        self._samples += len(lines)
        self._missing += len(missing)
        if lines:
            for body in self._bodies(lines):
                self.sink.offer(body)

    def _bodies(self, lines: Sequence[_Line]) -> list[Body]:
        """One body of every line, halved until each fits in ``max_message_bytes``."""
        raw = [taken.line for taken in lines]
        encoded = encode_body(raw, self._gzip_min_bytes)
        size = len(encoded.body.encode("utf-8"))
        if size > self._max_message_bytes and len(lines) > 1:
            half = len(lines) // 2
            return self._bodies(lines[:half]) + self._bodies(lines[half:])
        return [
            Body(
                encoded=encoded,
                trades=len(lines),  # the sink counts lines as "trades"
                raw_bytes=sum(map(len, raw)) + len(raw) - 1,
                id_ranges=tuple(IdRange(t.market, t.source_id, t.source_id) for t in lines),
                last_event_time_ms=max(t.ts_ms for t in lines),
            )
        ]

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval_s)
            self._log_stats("spread sampler")

    def _log_stats(self, what: str) -> None:
        s = self.stats
        log.info(
            "%s: %d ticks, %d samples (%d thin) in %d messages, %d market-ticks without a book, "
            "%d samples dropped, %d Binance resyncs, %d malformed frames, %d messages pending",
            what,
            s.ticks,
            s.samples,
            s.thin,
            s.messages,
            s.missing,
            s.dropped,
            s.resyncs,
            s.malformed,
            self.sink.depth,
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
            log.info("%s: stopping the sampler and sending the samples taken", sig.name)
        else:
            log.warning("%s again: already stopping, waiting for SQS sends to finish", sig.name)
        self.stop()


def run(
    settings: Settings,
    clients: AwsClients,
    queue_url: str,
    *,
    seconds: float | None = None,
    replay: Sequence[Path] | None = None,
    speed: float | None = None,
) -> SamplerStats:
    """Sample the configured markets into the SQS queue until SIGINT/SIGTERM or ``seconds``.

    With ``replay`` (capture files), the Binance books come from the captures' depth frames and
    recorded snapshot, paced at ``speed`` (None: as fast as read), and BTCMarkets is not polled.
    """
    market_notionals(settings)  # a ConfigError before anything is opened
    interrupt = threading.Event()

    def pause(seconds: float) -> None:
        interrupt.wait(seconds)  # REST retry waits end at once when the sampler stops

    key = settings.binance_api_key
    binance_rest = BinanceRest(
        settings.binance_rest_url,
        api_key=None if key is None else key.get_secret_value(),
        sleep=pause,
    )
    btcm_rest = BtcMarketsRest(settings.btcmarkets_rest_url, sleep=pause)

    async def main() -> SamplerStats:
        symbols, markets = settings.spread_binance_symbols, settings.spread_btcm_markets
        sampler = SpreadSampler(
            settings,
            SqsSink(clients.sqs, queue_url, queue_max=settings.send_queue_max),
            binance=_binance_books(settings, symbols, binance_rest, replay, speed),
            btcm=BtcmBooks(markets, btcm_rest) if markets and replay is None else None,
            interrupt=interrupt,
        )
        return await sampler.run(seconds)

    with binance_rest, btcm_rest:
        return asyncio.run(main())


def _binance_books(
    settings: Settings,
    symbols: Sequence[str],
    rest: BinanceRest,
    replay: Sequence[Path] | None,
    speed: float | None,
) -> BinanceBooks | None:
    if not symbols:
        return None
    if replay is None:
        return BinanceBooks(settings, symbols, rest)
    snapshots = CaptureSnapshots(replay)
    return BinanceBooks(settings, symbols, snapshots, stream=DepthReplay(replay, speed, symbols))
