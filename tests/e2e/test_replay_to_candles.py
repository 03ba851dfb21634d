"""End to end: real captures over a loopback Binance websocket -> producer -> SQS -> ingest -> DynamoDB.

Every minute in DynamoDB must equal the candle computed independently from the same trades
(tests/builders.py, plain Decimal arithmetic), and the complete minutes Binance's official klines.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from flows.ingest_trades import ingest_trades
from producer.sources import BinanceSource
from tasks.aws import dynamodb, status_records
from tasks.core.models import Interval
from tests.builders import capture_trades, kline, reference_candles
from tests.conftest import AwsEnv
from tests.fakes.binance_ws import (
    BTC_0808,
    BTC_0809,
    ETH_0808,
    ETH_0809,
    capture_frames,
    fake_binance,
)
from tests.producer.support import produce_until_seen, trade_frames, trade_line

FILES = (BTC_0808, BTC_0809, ETH_0808, ETH_0809)
MINUTE = 60_000
# Binance's official 1m klines (data/binance-ws/README.md): open, high, low, close, volume.
OFFICIAL = {
    ("BTCUSDT", 1_723_161_300_000): ("61828.00", "61860.80", "61780.00", "61782.25", "15.07702"),
    ("ETHUSDT", 1_723_161_660_000): ("2679.40", "2679.40", "2673.60", "2677.41", "841.985"),
}

pytestmark = pytest.mark.e2e


def test_replayed_real_captures_become_exact_candles_in_dynamodb(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected_lines = [trade_line(f) for f in trade_frames(*FILES)]

    async def produce() -> None:
        async with fake_binance(capture_frames(*FILES)) as server:
            settings = aws.settings.model_copy(update={"binance_ws_url": server.url})
            source = BinanceSource(settings, ["BTCUSDT", "ETHUSDT"])
            stats = await produce_until_seen(settings, source, aws, expected_lines, timeout_s=120)
            assert (stats.trades, stats.dropped, stats.malformed) == (len(expected_lines), 0, 0)

    asyncio.run(produce())
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    report = ingest_trades(until_empty=True)
    assert (report.rejects, report.dead_lettered) == (0, 0)
    assert report.new_trades == len(expected_lines) == 34_419

    trades = capture_trades(*(f.name for f in FILES))
    expected = reference_candles(trades)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        stored = {
            c.open_time: c
            for c in dynamodb.query_candles(
                aws.clients.dynamodb, aws.spec.table.name, symbol, Interval.M1
            )
        }
        mine = {t: r for (s, t), r in expected.items() if s == symbol}
        assert sorted(stored) == sorted(mine)  # every traded minute, and no others
        assert sorted(stored) == list(range(min(stored), max(stored) + MINUTE, MINUTE))
        for t, ref in mine.items():
            c = stored[t]
            assert kline(c) == kline(ref), (symbol, t)
            assert c.close_time == t + MINUTE - 1
    for (symbol, t), official in OFFICIAL.items():
        [c] = dynamodb.get_candles(
            aws.clients.dynamodb, aws.spec.table.name, [(symbol, Interval.M1, t)]
        ).values()
        assert (c.open, c.high, c.low, c.close, c.volume) == tuple(map(Decimal, official))

    # What the pipeline said about itself on the way (GET /health, candleflow monitor).
    beats = status_records.read(aws.clients.dynamodb, aws.spec.table.name)
    assert [p.seq for p in beats.producers] == [34_419]  # one producer; its running count of trades
    assert beats.ingest is not None and beats.ingest.updated_ms >= max(
        beats.last_trade_seen_ms.values()
    )
    newest = {s: max(t.trade_time for t in trades if t.symbol == s) for s in ("BTCUSDT", "ETHUSDT")}
    assert beats.last_trade_ms == newest
