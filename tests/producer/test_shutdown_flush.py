"""Stopping the producer (SIGTERM, or stop()) sends the trades still buffered: nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

import pytest

from producer.main import Producer, run
from producer.sinks import SqsSink
from producer.sources import BinanceSource, ReplaySource
from tests.conftest import AwsEnv
from tests.fakes.binance_ws import BTC_0808, fake_binance
from tests.producer.support import drain_lines, trade_frames, trade_line


def test_sigterm_sends_the_buffered_trades_before_exiting(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    # At 20x the recording's pace the 6-minute capture would take 18 s; SIGTERM comes after 0.7 s,
    # while every trade received so far is still in the packer's buffer (flush interval 1 s).
    settings = aws.settings.model_copy(update={"flush_interval_s": 1.0})
    source = ReplaySource([BTC_0808], speed=20.0)
    timer = threading.Timer(0.7, os.kill, (os.getpid(), signal.SIGTERM))
    caplog.set_level(logging.INFO, logger="producer")
    timer.start()
    try:
        stats = run(settings, source, aws.clients, aws.resources.queue_url)
    finally:
        timer.cancel()
    assert any("SIGTERM" in r.getMessage() for r in caplog.records)
    all_lines = [trade_line(f) for f in trade_frames(BTC_0808)]
    assert 0 < stats.trades < len(all_lines)
    assert (stats.dropped, stats.malformed) == (0, 0)
    assert sorted(drain_lines(aws)) == sorted(all_lines[: stats.trades])


def test_stopping_a_live_stream_sends_what_was_received(aws: AwsEnv) -> None:
    frames = trade_frames(BTC_0808)[:2000]

    async def scenario() -> int:
        async with fake_binance(frames, frame_delay_s=0.001) as server:
            settings = aws.settings.model_copy(
                update={"binance_ws_url": server.url, "flush_interval_s": 1.0}
            )
            sink = SqsSink(aws.clients.sqs, aws.resources.queue_url, queue_max=100)
            producer = Producer(settings, BinanceSource(settings, ["BTCUSDT"]), sink)
            running = asyncio.create_task(producer.run())
            while producer.stats.trades < 200:
                await asyncio.sleep(0.01)
            producer.stop()
            stats = await asyncio.wait_for(running, 10)
            assert stats.dropped == 0 and stats.messages >= 1
            return stats.trades

    received = asyncio.run(scenario())
    assert sorted(drain_lines(aws)) == sorted(trade_line(f) for f in frames[:received])
