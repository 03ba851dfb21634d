"""End to end: the producer's websocket drops, the market moves on, and backfill repairs what was lost.

The real 2024-08-08 captures (BTCUSDT and ETHUSDT trade frames) play over the loopback Binance
websocket like a live market: the producer's first connection is cut after ``DROP_AFTER`` frames and the
next ``LOST`` frames are played to nobody while it reconnects, so 72 s of trades (both symbols)
never reach it. The real producer -> SQS -> ingest; detect-gaps records one gap per symbol, exactly the
lost ids; ``candleflow backfill`` against a loopback Binance REST built from the same captures makes
every 1m, 1h and 1d candle equal the one computed from the complete captures.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from cli.main import main
from flows.detect_gaps import detect_gaps
from flows.ingest_trades import ingest_trades
from producer.sources import BinanceSource
from tasks.core.keys import iso_time
from tests.builders import capture_trades
from tests.conftest import AwsEnv
from tests.e2e.checks import assert_candles_equal_the_trades
from tests.fakes.binance_rest import FakeBinanceRest
from tests.fakes.binance_ws import BTC_0808, ETH_0808, fake_binance
from tests.producer.support import produce_until_seen, trade_frames, trade_key, trade_line
from tests.producer.test_stream_reconnects import SYMBOLS, quick

FILES = (BTC_0808, ETH_0808)  # 15,863 trades, 23:54:15 to 00:00:01
DROP_AFTER = 3_000  # the first connection is cut at 23:55:39 of trade time
LOST = 2_500  # 1,374 BTCUSDT and 1,126 ETHUSDT trades, 23:55:39 to 23:56:51
# detect-gaps only scans minutes settled 3 minutes (CANDLEFLOW_GAP_SETTLE_MINUTES) before the newest
# stored one (00:00 here): the trades after the lost block (23:56:51) fall in a settled minute.

pytestmark = pytest.mark.e2e


def test_a_dropped_websocket_loses_trades_that_are_detected_and_backfilled_to_exact_candles(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frames = trade_frames(*FILES)
    wanted = [trade_line(f) for f in frames[:DROP_AFTER] + frames[DROP_AFTER + LOST :]]
    lost: dict[str, list[int]] = {}
    for f in frames[DROP_AFTER : DROP_AFTER + LOST]:
        symbol, trade_id = trade_key(trade_line(f))
        lost.setdefault(symbol, []).append(trade_id)
    assert sorted(lost) == SYMBOLS
    for ids in lost.values():  # one block of consecutive ids per symbol: one gap each
        assert sorted(ids) == list(range(min(ids), max(ids) + 1))

    async def produce() -> None:
        async with fake_binance(frames, drop_after=DROP_AFTER, lost_on_drop=LOST) as server:
            settings = quick(aws.settings, server.url)
            source = BinanceSource(settings, SYMBOLS)
            stats = await produce_until_seen(settings, source, aws, wanted, timeout_s=120)
            assert (source.stream.stats.drops, source.stream.stats.connections) == (1, 2)
            assert server.lost == frames[DROP_AFTER : DROP_AFTER + LOST]
            first, second = server.connections
            assert first.dropped and first.frames_sent == DROP_AFTER
            assert second.frames_sent == len(frames) - DROP_AFTER - LOST
            assert (stats.trades, stats.dropped) == (len(wanted), 0)

    asyncio.run(produce())
    trades = capture_trades(*(f.name for f in FILES))
    with FakeBinanceRest(trades) as rest:
        monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
        monkeypatch.setenv("CANDLEFLOW_BINANCE_REST_URL", rest.url)
        report = ingest_trades(until_empty=True)
        assert report.new_trades == len(wanted)

        found = sorted(detect_gaps(fill=False).found, key=lambda g: g.symbol)
        assert [(g.symbol, g.first_id, g.last_id) for g in found] == [
            (s, min(ids), max(ids)) for s, ids in sorted(lost.items())
        ]

        # The scheduled rollups ran meanwhile (short of the lost trades); then repair by hand.
        capture = ["--start", "2024-08-08T23:00:00Z", "--end", "2024-08-09T00:59:59Z"]
        assert main(["rollup", "--interval", "1h", *capture]) == 0
        start, end = min(g.start_ms for g in found), max(g.end_ms for g in found)
        assert main(["backfill", "--start", iso_time(start), "--end", iso_time(end)]) == 0
        assert rest.paths.count("/api/v3/historicalTrades") == 2 + 2  # 1000 ids per page

    assert_candles_equal_the_trades(aws, trades, SYMBOLS)
    capsys.readouterr()
    assert main(["gaps", "--all", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert sorted((g["symbol"], g["state"]) for g in shown) == [(s, "filled") for s in SYMBOLS]
