"""End to end: real BTCUSDT and ETHUSDT captures, served over a loopback websocket, land in SQS intact."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from producer.sources import BinanceSource, binance_reachable
from tests.conftest import AwsEnv, free_port
from tests.fakes.binance_ws import BTC_0808, ETH_0808, capture_frames, fake_binance
from tests.producer.support import drain_lines, produce_until_seen, trade_frames, trade_line


def test_oracle_cuts_exactly_the_data_object_of_each_trade_frame() -> None:
    for frame in trade_frames(BTC_0808, ETH_0808):
        assert json.loads(trade_line(frame)) == json.loads(frame.text)["data"]


def test_both_captures_arrive_in_sqs_byte_for_byte_and_nothing_else(aws: AwsEnv) -> None:
    expected = [trade_line(f) for f in trade_frames(BTC_0808, ETH_0808)]

    async def scenario() -> None:
        async with fake_binance(capture_frames(BTC_0808, ETH_0808)) as server:
            settings = aws.settings.model_copy(update={"binance_ws_url": server.url})
            source = BinanceSource(settings, ["BTCUSDT", "ETHUSDT"])
            stats = await produce_until_seen(settings, source, aws, expected)
            assert (stats.trades, stats.dropped, stats.malformed) == (len(expected), 0, 0)
            assert source.stream.stats.connections == 1
            assert server.connections[0].streams == {"btcusdt@trade", "ethusdt@trade"}

    asyncio.run(scenario())
    received = drain_lines(aws)
    assert sorted(received) == sorted(expected)
    symbols = Counter(json.loads(line)["s"] for line in received)
    assert symbols == {"BTCUSDT": 9_757, "ETHUSDT": 6_106}


def test_only_the_requested_symbols_are_subscribed_and_sent(aws: AwsEnv) -> None:
    expected = [trade_line(f) for f in trade_frames(ETH_0808)]

    async def scenario() -> None:
        async with fake_binance(capture_frames(BTC_0808, ETH_0808)) as server:
            settings = aws.settings.model_copy(update={"binance_ws_url": server.url})
            await produce_until_seen(settings, BinanceSource(settings, ["ETHUSDT"]), aws, expected)
            assert server.connections[0].streams == {"ethusdt@trade"}

    asyncio.run(scenario())
    assert sorted(drain_lines(aws)) == sorted(expected)


def test_reachability_probe_tells_a_listening_server_from_a_closed_port() -> None:
    async def scenario() -> None:
        async with fake_binance(trade_frames(BTC_0808)[:1]) as server:
            assert await asyncio.to_thread(binance_reachable, server.url, 2.0)
        closed = f"ws://127.0.0.1:{free_port()}"
        assert not await asyncio.to_thread(binance_reachable, closed, 2.0)

    asyncio.run(scenario())
