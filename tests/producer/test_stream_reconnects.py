"""The connection loop survives what Binance does to connections, without losing trades.

The loopback market waits while no client listens, so after a reconnect every trade is still expected.
"""

from __future__ import annotations

import asyncio

from producer.sources import BinanceSource
from tasks.settings import Settings
from tests.conftest import AwsEnv
from tests.fakes.binance_ws import BTC_0808, ETH_0808, fake_binance
from tests.producer.support import drain_lines, produce_until_seen, trade_frames, trade_line

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def quick(settings: Settings, url: str, **overrides: float) -> Settings:
    """Settings with timeouts small enough for tests, pointed at the loopback server."""
    return settings.model_copy(
        update={
            "binance_ws_url": url,
            "silence_timeout_s": 5.0,
            "reconnect_max_backoff_s": 0.2,
            "flush_interval_s": 0.2,
            **overrides,
        }
    )


def test_a_dropped_connection_is_reopened_and_every_trade_still_arrives(aws: AwsEnv) -> None:
    frames = trade_frames(BTC_0808, ETH_0808)[:4000]
    expected = [trade_line(f) for f in frames]

    async def scenario() -> None:
        async with fake_binance(frames, drop_after=1500) as server:
            settings = quick(aws.settings, server.url)
            source = BinanceSource(settings, SYMBOLS)
            stats = await produce_until_seen(settings, source, aws, expected)
            assert source.stream.stats.drops == 1
            assert source.stream.stats.connections == 2
            first, second = server.connections
            assert first.dropped and first.frames_sent == 1500
            assert second.frames_sent == len(frames) - 1500
            assert stats.dropped == 0

    asyncio.run(scenario())
    assert sorted(drain_lines(aws)) == sorted(expected)


def test_a_silent_connection_is_closed_by_the_watchdog_and_replaced(aws: AwsEnv) -> None:
    frames = trade_frames(BTC_0808)[:1000]
    expected = [trade_line(f) for f in frames]

    async def scenario() -> None:
        async with fake_binance(frames, silent_after=300) as server:
            settings = quick(aws.settings, server.url, silence_timeout_s=0.3)
            source = BinanceSource(settings, ["BTCUSDT"])
            await produce_until_seen(settings, source, aws, expected)
            assert source.stream.stats.silences == 1
            first, second = server.connections[:2]
            assert first.silenced and first.frames_sent == 300
            assert first.closed_at is not None, "the client closed the silent connection"
            assert second.opened_at - first.opened_at >= 0.3

    asyncio.run(scenario())
    assert sorted(drain_lines(aws)) == sorted(expected)


def test_an_old_connection_is_closed_only_after_its_replacement_streams(aws: AwsEnv) -> None:
    frames = trade_frames(BTC_0808)[:600]
    expected = [trade_line(f) for f in frames]

    async def scenario() -> None:
        async with fake_binance(frames, frame_delay_s=0.002) as server:
            settings = quick(aws.settings, server.url, max_connection_age_s=0.3)
            source = BinanceSource(settings, ["BTCUSDT"])
            stats = await produce_until_seen(settings, source, aws, expected)
            assert source.stream.stats.rotations >= 2
            assert source.stream.stats.drops == 0
            assert stats.trades >= len(expected)  # overlaps deliver some trades twice
            for old, new in zip(server.connections, server.connections[1:], strict=False):
                assert old.closed_at is not None
                assert new.opened_at < old.closed_at, "the new connection opened first"
                assert new.frames_sent > 0

    asyncio.run(scenario())
    received = drain_lines(aws)
    assert set(received) == set(expected), "overlapping connections leave no gap"
    assert len(received) >= len(expected)


def test_server_pings_are_answered_so_the_connection_stays_up(aws: AwsEnv) -> None:
    frames = trade_frames(ETH_0808)[:300]
    expected = [trade_line(f) for f in frames]

    async def scenario() -> None:
        async with fake_binance(
            frames, frame_delay_s=0.002, ping_interval_s=0.05, ping_timeout_s=0.5
        ) as server:
            settings = quick(aws.settings, server.url)
            source = BinanceSource(settings, ["ETHUSDT"])
            await produce_until_seen(settings, source, aws, expected)
            assert source.stream.stats.drops == 0
            await asyncio.sleep(0.05)  # let the server record the close
            (connection,) = server.connections
            assert connection.latency_s > 0, "the client answered pings"
            assert connection.close_code == 1000, "closed by the producer, not for a missing pong"

    asyncio.run(scenario())
    assert sorted(drain_lines(aws)) == sorted(expected)
