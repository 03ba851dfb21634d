"""The spread sampler end to end: real depth captures over a loopback websocket, the loopback REST
APIs of Binance and BTCMarkets, samples into a moto SQS queue, checked against independent books.

The Binance oracle is a ``BinanceBookSync`` fed the capture's REST snapshot and the same depth frames;
the BTCMarkets oracle is ``sample()`` of the very answer the fake served (recorded by the client's
HTTP transport) at the sample's snapshotId.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from cli.sample import register, run_cli, samples_queue_name
from producer.books import BinanceBooks, BtcmBooks, btcm_ts_ms
from producer.sinks import SqsSink
from producer.spreads import SamplerStats, SpreadSampler, run
from tasks.aws.sqs import OutgoingMessage, delete, receive, send_batch
from tasks.binance_rest import BinanceRest
from tasks.btcmarkets_rest import BtcMarketsRest
from tasks.core.contract import CONTENT_ENCODING, decode_body
from tasks.core.orderbook import (
    BinanceBookSync,
    parse_btcm_orderbook,
    parse_depth_snapshot,
    parse_depth_update,
)
from tasks.core.spread_contract import parse_sample_line
from tasks.core.spreads import SpreadSample, sample
from tasks.settings import Settings
from tests.conftest import AwsEnv, free_port
from tests.fakes.binance_rest import Depth, FakeBinanceRest, capture_depth
from tests.fakes.binance_ws import BTC_0808, ETH_0808, FakeBinance, RecordedFrame, capture_frames
from tests.fakes.binance_ws import fake_binance as serve_binance
from tests.fakes.btcmarkets_rest import FakeBtcMarketsRest

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MARKETS = ["BTC-AUD", "ETH-AUD", "XRP-AUD", "SOL-AUD", "LTC-AUD", "USDT-AUD"]
NOTIONAL = Decimal(10_000)
INTERVAL_S = 0.2
THIN_BOOK = ([("99.5", "0.01"), ("99", "0.02")], [("100.5", "0.03")])  # LTC-AUD, ~5 AUD deep


# --- helpers -------------------------------------------------------------------------------------


def depth_frames(per_symbol: int) -> list[RecordedFrame]:
    """The first ``per_symbol`` depth@100ms frames of each symbol, merged in receive order."""
    taken: dict[str, int] = {}
    frames = []
    for frame in capture_frames(BTC_0808, ETH_0808):
        if frame.stream.endswith("@depth@100ms") and taken.get(frame.stream, 0) < per_symbol:
            taken[frame.stream] = taken.get(frame.stream, 0) + 1
            frames.append(frame)
    return frames


def capture_sync(symbol: str) -> BinanceBookSync:
    """A book synced from the REST snapshot recorded in the symbol's capture."""
    depth = capture_depth(symbol)
    assert depth is not None
    sync = BinanceBookSync(symbol)
    sync.on_snapshot(parse_depth_snapshot(depth.answer(1000)))
    return sync


def oracle(
    frames: Sequence[RecordedFrame], symbol: str, update_ids: set[int]
) -> dict[int, SpreadSample]:
    """``sample()`` of an independently replayed book at each wanted update id, timed by the ``E``
    of the update that brought the book there (one that ends exactly at the snapshot's id too)."""
    sync = capture_sync(symbol)
    found: dict[int, SpreadSample] = {}
    for frame in frames:
        event = parse_depth_update(json.loads(frame.text)["data"])
        if event.symbol != symbol:
            continue
        sync.on_event(event)
        last = sync.last_update_id
        if last == event.final_update_id and last in update_ids:
            book = sync.book
            assert book is not None and last is not None
            found[last] = sample(symbol, book, NOTIONAL, event.event_time)
    return found


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that keeps every orderbook answer by (marketId, snapshotId)."""

    def __init__(self) -> None:
        super().__init__()
        self.books: dict[tuple[str, int], bytes] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        body = response.read()
        if response.status_code == 200 and request.url.path.endswith("/orderbook"):
            answer = json.loads(body)
            with self._lock:
                self.books[(answer["marketId"], answer["snapshotId"])] = body
        return response


class LiveDepthRest(FakeBinanceRest):
    """Binance REST whose depth snapshot is the market's book as of what the websocket has sent.

    The market plays ``market`` (every frame, lost ones included: the client missed them, the
    exchange did not); the websocket fake serves the frames not in ``lost``.
    """

    def __init__(self, market: Sequence[RecordedFrame], lost: set[int]) -> None:
        super().__init__([])
        self.market = list(market)
        self.sent_index = [i for i in range(len(self.market)) if i not in lost]
        self.ws: FakeBinance | None = None
        self._syncs = {s: capture_sync(s) for s in SYMBOLS}
        self._fed = 0
        self._book_lock = threading.Lock()

    def websocket_frames(self) -> list[RecordedFrame]:
        return [self.market[i] for i in self.sent_index]

    def depth(self, symbol: str) -> Depth | None:
        assert self.ws is not None
        with self._book_lock:
            position = self.ws.position
            upto = (
                self.sent_index[position] if position < len(self.sent_index) else len(self.market)
            )
            for frame in self.market[self._fed : upto]:
                event = parse_depth_update(json.loads(frame.text)["data"])
                self._syncs[event.symbol].on_event(event)
            self._fed = max(self._fed, upto)
            sync = self._syncs[symbol]
            book, last = sync.book, sync.last_update_id
            assert book is not None and last is not None
            return Depth(
                last,
                tuple((str(p), str(q)) for p, q in book.bids()),
                tuple((str(p), str(q)) for p, q in book.asks()),
            )


@dataclass
class Received:
    """The samples queue drained: each message's parsed lines."""

    messages: list[list[tuple[SpreadSample, str, int]]]

    @property
    def samples(self) -> list[tuple[SpreadSample, str, int]]:
        return [s for message in self.messages for s in message]

    def of(self, market: str) -> list[tuple[SpreadSample, int]]:
        return [(s, source_id) for s, _, source_id in self.samples if s.market == market]


def samples_queue(aws: AwsEnv) -> str:
    """The ``<prefix>-spread-samples`` queue (created here until provisioning makes it)."""
    name = samples_queue_name(aws.settings)
    try:
        return aws.clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except aws.clients.sqs.exceptions.QueueDoesNotExist:
        return aws.clients.sqs.create_queue(QueueName=name)["QueueUrl"]


def drain(aws: AwsEnv, url: str) -> Received:
    messages: list[list[tuple[SpreadSample, str, int]]] = []
    empty = 0
    while empty < 2:
        batch = receive(aws.clients.sqs, url, max_messages=10, wait_s=0)
        empty = 0 if batch else empty + 1
        for m in batch:
            body = decode_body(m.body, m.attributes.get(CONTENT_ENCODING), 1 << 20)
            messages.append([parse_sample_line(line) for line in body.split(b"\n")])
        delete(aws.clients.sqs, url, [m.receipt_handle for m in batch])
    return Received(messages)


def quick(settings: Settings, **urls: str) -> Settings:
    return settings.model_copy(
        update={
            **urls,
            "spread_sample_interval_s": INTERVAL_S,  # below the 0.5 s floor: tests only
            "silence_timeout_s": 5.0,
            "reconnect_max_backoff_s": 0.2,
        }
    )


async def sample_until_replayed(
    sampler: SpreadSampler, ws: FakeBinance, timeout_s: float = 30.0
) -> SamplerStats:
    """Run the sampler until the websocket has played everything and two more ticks went by."""
    running = asyncio.create_task(sampler.run())
    deadline = time.monotonic() + timeout_s
    await asyncio.wait_for(ws.finished.wait(), timeout_s)
    ticks = sampler.stats.ticks
    while sampler.stats.ticks < ticks + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    sampler.stop()
    return await asyncio.wait_for(running, 10)


async def run_ticks(sampler: SpreadSampler, ticks: int, timeout_s: float = 30.0) -> SamplerStats:
    """Run the sampler until it has ticked ``ticks`` times (however slow a loaded machine is)."""
    running = asyncio.create_task(sampler.run())
    deadline = time.monotonic() + timeout_s
    while sampler.stats.ticks < ticks and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    sampler.stop()
    return await asyncio.wait_for(running, 10)


# --- end to end ----------------------------------------------------------------------------------


def test_every_market_is_sampled_exactly_as_independent_books_say(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    url = samples_queue(aws)
    frames = depth_frames(600)
    recorder = RecordingTransport()
    caplog.set_level(logging.INFO, logger="producer")

    async def scenario(rest: FakeBinanceRest, btcm: FakeBtcMarketsRest) -> SamplerStats:
        async with serve_binance(frames, frame_delay_s=0.001) as ws:
            settings = quick(aws.settings, binance_ws_url=ws.url)
            sink = SqsSink(aws.clients.sqs, url, queue_max=100)
            with (
                BinanceRest(rest.url) as binance_rest,
                BtcMarketsRest(btcm.url, transport=recorder) as btcm_rest,
            ):
                sampler = SpreadSampler(
                    settings,
                    sink,
                    binance=BinanceBooks(settings, SYMBOLS, binance_rest),
                    btcm=BtcmBooks(MARKETS, btcm_rest),
                )
                stats = await sample_until_replayed(sampler, ws)
            assert ws.connections[0].streams == {"btcusdt@depth@100ms", "ethusdt@depth@100ms"}
            assert sampler.binance is not None
            assert {c.resyncs for c in sampler.binance.counters.values()} == {0}
            return stats

    with FakeBinanceRest([]) as rest, FakeBtcMarketsRest() as btcm:
        btcm.set_book("LTC-AUD", *THIN_BOOK)
        stats = asyncio.run(scenario(rest, btcm))
        # One snapshot per symbol: the books stayed in sync.
        assert sorted((r.params["symbol"], r.params["limit"]) for r in rest.requests) == [
            (s, "1000") for s in SYMBOLS
        ]

    received = drain(aws, url)
    # One message per tick with samples, one line per market in it; all of them arrived.
    assert len(received.messages) == stats.messages >= 5
    for message in received.messages:
        markets = [s.market for s, _, _ in message]
        assert len(markets) == len(set(markets))
    assert len(received.samples) == stats.samples and stats.dropped == 0
    assert {s.market for s, _, _ in received.samples} == {*SYMBOLS, *MARKETS}

    for symbol in SYMBOLS:
        taken = received.of(symbol)
        assert len({source_id for _, source_id in taken}) >= 3, symbol
        expected = oracle(frames, symbol, {source_id for _, source_id in taken})
        for got, source_id in taken:
            assert got == expected[source_id], (symbol, source_id)
            assert not got.thin and got.spread is not None and got.spread > 0
        assert all(venue == "binance" for s, venue, _ in received.samples if s.market == symbol)

    for market in MARKETS:
        for got, snapshot_id in received.of(market):
            answer = parse_btcm_orderbook(json.loads(recorder.books[(market, snapshot_id)]))
            assert got.ts_ms == snapshot_id // 1000
            assert got == sample(market, answer.book, NOTIONAL, got.ts_ms)
            assert got.thin is (market == "LTC-AUD")
    thin = [s for s, _ in received.of("LTC-AUD")]
    assert thin and all(s.filled_fraction < 1 and s.buy_avg_price is None for s in thin)
    assert stats.thin == len(thin)
    assert "BTCUSDT book synced at update id" in caplog.text


def test_a_lost_depth_update_resyncs_the_book_and_later_samples_are_right_again(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    url = samples_queue(aws)
    market = depth_frames(600)
    btc = [i for i, f in enumerate(market) if f.stream.startswith("btcusdt")]
    lost = btc[150]
    lost_update = parse_depth_update(json.loads(market[lost].text)["data"])
    caplog.set_level(logging.INFO, logger="producer")

    async def scenario(rest: LiveDepthRest) -> tuple[SamplerStats, dict[str, int]]:
        async with serve_binance(rest.websocket_frames(), frame_delay_s=0.001) as ws:
            rest.ws = ws
            settings = quick(aws.settings, binance_ws_url=ws.url)
            sink = SqsSink(aws.clients.sqs, url, queue_max=100)
            with BinanceRest(rest.url) as binance_rest:
                books = BinanceBooks(settings, SYMBOLS, binance_rest)
                sampler = SpreadSampler(settings, sink, binance=books, btcm=None)
                stats = await sample_until_replayed(sampler, ws)
            return stats, {s: c.resyncs for s, c in books.counters.items()}

    with LiveDepthRest(market, {lost}) as rest:
        stats, resyncs = asyncio.run(scenario(rest))
        depth_requests = [r.params["symbol"] for r in rest.requests]
    assert resyncs == {"BTCUSDT": 1, "ETHUSDT": 0} and stats.resyncs == 1
    assert depth_requests.count("BTCUSDT") >= 2 and depth_requests.count("ETHUSDT") >= 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"skips update ids after {lost_update.first_update_id - 1}" in warning
    assert "resyncing the book from a REST snapshot" in warning

    taken = drain(aws, url).of("BTCUSDT")
    after = {source_id for _, source_id in taken if source_id > lost_update.final_update_id}
    assert len(after) >= 3  # sampled again after the resync
    # Every sample, before and after the loss, is the true market's book at its update id.
    expected = oracle(market, "BTCUSDT", {source_id for _, source_id in taken})
    for got, source_id in taken:
        assert got == expected[source_id], source_id


def test_a_failed_btcmarkets_fetch_skips_only_that_market(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    url = samples_queue(aws)

    async def scenario(fake: FakeBtcMarketsRest) -> SamplerStats:
        # A fetch gets one tick to answer: 1 s, so only the injected 503 (not a loaded machine)
        # makes a market miss one.
        settings = quick(aws.settings).model_copy(update={"spread_sample_interval_s": 1.0})
        sink = SqsSink(aws.clients.sqs, url, queue_max=100)
        with BtcMarketsRest(fake.url, max_attempts=1) as client:
            btcm = BtcmBooks(["BTC-AUD", "ETH-AUD"], client)
            sampler = SpreadSampler(settings, sink, binance=None, btcm=btcm)
            return await run_ticks(sampler, 3)

    with FakeBtcMarketsRest() as fake:
        fake.fail_next(503, times=1)
        stats = asyncio.run(scenario(fake))
    received = drain(aws, url)
    # The first request got a 503 (no retry with max_attempts=1): one market missed one tick.
    assert stats.ticks >= 3 and stats.missing == 1 and stats.samples == 2 * stats.ticks - 1
    assert [len(m) for m in received.messages] == [1] + [2] * (stats.ticks - 1)
    assert "book not fetched; no sample this tick" in caplog.text


# --- shutdown ------------------------------------------------------------------------------------


def test_stopping_sends_the_samples_still_on_their_way_to_sqs(aws: AwsEnv) -> None:
    url = samples_queue(aws)
    sending = threading.Event()

    def slow_send(client: object, queue: str, messages: list[OutgoingMessage]) -> list[str]:
        sending.set()
        time.sleep(0.5)  # SQS is slow today: the stop comes while this message is in flight
        return send_batch(aws.clients.sqs, queue, messages)

    async def scenario(fake: FakeBtcMarketsRest) -> SamplerStats:
        settings = quick(aws.settings)
        sink = SqsSink(aws.clients.sqs, url, queue_max=100, send=slow_send)
        with BtcMarketsRest(fake.url) as client:
            sampler = SpreadSampler(settings, sink, binance=None, btcm=BtcmBooks(MARKETS, client))
            running = asyncio.create_task(sampler.run())
            while not sending.is_set():
                await asyncio.sleep(0.01)
            sampler.stop()
            return await asyncio.wait_for(running, 10)

    with FakeBtcMarketsRest() as fake:
        stats = asyncio.run(scenario(fake))
    received = drain(aws, url)
    assert stats.messages == len(received.messages) >= 1 and stats.dropped == 0
    assert len(received.samples) == stats.samples == len(MARKETS) * stats.ticks


def test_sigterm_stops_the_sampler_after_sending_what_it_sampled(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    url = samples_queue(aws)
    caplog.set_level(logging.INFO, logger="producer")
    with FakeBtcMarketsRest() as fake:
        settings = quick(aws.settings, btcmarkets_rest_url=fake.url).model_copy(
            update={"spread_binance_symbols": [], "spread_btcm_markets": ["BTC-AUD"]}
        )
        timer = threading.Timer(0.7, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        try:
            stats = run(settings, aws.clients, url)
        finally:
            timer.cancel()
    assert "SIGTERM: stopping the sampler" in caplog.text
    received = drain(aws, url)
    assert stats.ticks >= 1 and stats.samples == stats.ticks == len(received.samples)


# --- the command ---------------------------------------------------------------------------------


def test_the_sample_command_runs_for_the_seconds_asked_and_prints_a_summary(
    aws: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    url = samples_queue(aws)
    parser = argparse.ArgumentParser(prog="candleflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sample", "--seconds", "0.75"])
    assert args.seconds == 0.75 and args.func is run_cli
    with FakeBtcMarketsRest() as fake:
        settings = quick(aws.settings, btcmarkets_rest_url=fake.url).model_copy(
            update={"spread_binance_symbols": [], "spread_btcm_markets": ["BTC-AUD", "ETH-AUD"]}
        )
        started = time.monotonic()
        assert run_cli(args, settings) == 0
        assert time.monotonic() - started < 5
    summary = capsys.readouterr().out.strip()
    received = drain(aws, url)
    assert summary.startswith(f"sampled {len(received.samples)} spreads (0 thin) in ")
    assert summary.endswith("0 resyncs, dropped 0")


def test_the_sample_command_fails_clearly_without_its_queue(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    settings = aws.settings.model_copy(update={"prefix": "nosuch-prefix"})
    parser = argparse.ArgumentParser(prog="candleflow")
    register(parser.add_subparsers(dest="command", required=True))
    assert run_cli(parser.parse_args(["sample"]), settings) == 1
    assert "cannot find the spread samples queue nosuch-prefix-spread-samples" in caplog.text


def test_an_unreachable_binance_fails_the_command_with_the_url(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    samples_queue(aws)
    url = f"ws://127.0.0.1:{free_port()}"
    settings = quick(aws.settings, binance_ws_url=url).model_copy(
        update={"spread_btcm_markets": [], "spread_binance_symbols": ["BTCUSDT"]}
    )
    parser = argparse.ArgumentParser(prog="candleflow")
    register(parser.add_subparsers(dest="command", required=True))
    assert run_cli(parser.parse_args(["sample", "--seconds", "30"]), settings) == 1
    assert f"cannot connect to Binance at {url}/stream?streams=btcusdt@depth@100ms" in caplog.text


def test_notional_overrides_must_name_configured_markets(aws: AwsEnv) -> None:
    settings = aws.settings.model_copy(update={"spread_notionals": {"DOGE-AUD": Decimal(5)}})
    with pytest.raises(Exception, match="CANDLEFLOW_SPREAD_NOTIONALS names DOGE-AUD"):
        run(settings, aws.clients, "unused")


# --- pure parts ----------------------------------------------------------------------------------


def test_a_btcmarkets_book_is_timed_by_its_snapshot_id_unless_that_is_no_time() -> None:
    received_ns = 1_723_161_255_500_000_000
    assert btcm_ts_ms(1_723_161_255_408_123, received_ns) == 1_723_161_255_408
    assert btcm_ts_ms(0, received_ns) == 1_723_161_255_500
    assert btcm_ts_ms(42_000_000, received_ns) == 1_723_161_255_500


def test_the_sampler_does_not_import_prefect() -> None:
    code = "import sys, producer.spreads, cli.sample; sys.exit('prefect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_offline_the_sampler_replays_the_captured_books_exactly(aws: AwsEnv) -> None:
    """`candleflow up` without Binance: depth frames and the snapshot come from the captures."""
    url = samples_queue(aws)
    settings = quick(aws.settings).model_copy(update={"spread_btcm_markets": ["BTC-AUD"]})
    stats = run(settings, aws.clients, url, seconds=4.0, replay=[BTC_0808, ETH_0808], speed=100)
    received = drain(aws, url)
    assert stats.samples == len(received.samples) > 0 and stats.resyncs == 0
    assert {s.market for s, _, _ in received.samples} == set(SYMBOLS)  # BTCMarkets not polled
    frames = [f for f in capture_frames(BTC_0808, ETH_0808) if f.stream.endswith("@depth@100ms")]
    for symbol in SYMBOLS:
        taken = received.of(symbol)
        expected = oracle(frames, symbol, {source_id for _, source_id in taken})
        assert len(expected) >= 3
        for got, source_id in taken:
            assert got == expected[source_id], (symbol, source_id)
