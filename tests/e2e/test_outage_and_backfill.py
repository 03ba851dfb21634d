"""End to end: an outage in the stream is detected, shown, and repaired from Binance REST.

The real captures are replayed over a loopback Binance websocket with a block of BTCUSDT trade ids
removed (what a dropped connection loses) -> producer -> SQS -> ingest. detect-gaps records the gap,
the candles it touches read as incomplete (`candleflow gaps`, `candleflow candles`), the rollups run
short of its trades, and `candleflow backfill` against a loopback Binance REST server built from the same captures makes
every 1m, 1h and 1d candle equal the one computed from the complete capture.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from cli.main import main
from flows.detect_gaps import detect_gaps
from flows.ingest_trades import ingest_trades
from producer.sources import BinanceSource
from tasks.aws import dynamodb
from tasks.core.keys import iso_millis, iso_time
from tasks.core.models import Interval
from tests.builders import capture_trades, reference_candles
from tests.conftest import AwsEnv
from tests.e2e.checks import assert_candles_equal_the_trades
from tests.fakes.binance_rest import FakeBinanceRest
from tests.fakes.binance_ws import (
    BTC_0808,
    BTC_0809,
    ETH_0808,
    ETH_0809,
    capture_frames,
    fake_binance,
)
from tests.producer.support import produce_until_seen, trade_key, trade_line

FILES = (BTC_0808, BTC_0809, ETH_0808, ETH_0809)
OUTAGE = range(3_735_690_000, 3_735_692_500)  # 2,500 BTCUSDT ids, about 23:58:40 to 23:59:20

pytestmark = pytest.mark.e2e


def test_an_outage_is_reported_then_backfilled_to_exact_candles_at_every_interval(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frames = capture_frames(*FILES)

    def lost(frame: object) -> bool:
        if not frame.stream.endswith("@trade"):  # type: ignore[attr-defined]
            return False
        symbol, trade_id = trade_key(trade_line(frame))  # type: ignore[arg-type]
        return symbol == "BTCUSDT" and trade_id in OUTAGE

    delivered = [f for f in frames if not lost(f)]
    wanted = [trade_line(f) for f in delivered if f.stream.endswith("@trade")]
    assert len(delivered) == len(frames) - len(OUTAGE)

    async def produce() -> None:
        async with fake_binance(delivered) as server:
            settings = aws.settings.model_copy(update={"binance_ws_url": server.url})
            source = BinanceSource(settings, ["BTCUSDT", "ETHUSDT"])
            stats = await produce_until_seen(settings, source, aws, wanted, timeout_s=120)
            assert (stats.trades, stats.dropped) == (len(wanted), 0)

    asyncio.run(produce())
    trades = capture_trades(*(f.name for f in FILES))
    with FakeBinanceRest(trades) as rest:
        monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
        monkeypatch.setenv("CANDLEFLOW_BINANCE_REST_URL", rest.url)
        report = ingest_trades(until_empty=True)
        assert report.new_trades == len(wanted)

        # The gap is recorded with its time window and shown; its candles read as incomplete.
        found = detect_gaps(fill=False).found
        assert [(g.symbol, g.first_id, g.last_id) for g in found] == [
            ("BTCUSDT", OUTAGE.start, OUTAGE.stop - 1)
        ]
        gap = found[0]
        capsys.readouterr()
        assert main(["gaps", "--format", "json"]) == 0
        [shown] = json.loads(capsys.readouterr().out)
        assert (shown["first_id"], shown["missing"], shown["state"]) == (OUTAGE.start, 2500, "open")
        assert (shown["start"], shown["end"]) == (iso_millis(gap.start_ms), iso_millis(gap.end_ms))
        assert main(["candles", "BTCUSDT", "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        incomplete = [r["open_time"] for r in rows if r["complete"] == "false"]
        assert incomplete == [
            iso_millis(t) for t in range(gap.start_ms, gap.end_ms, Interval.M1.ms)
        ]

        # The scheduled rollups ran meanwhile: the outage's hour and day are short of trades.
        capture = ["--start", "2024-08-08T23:00:00Z", "--end", "2024-08-09T00:59:59Z"]
        assert main(["rollup", "--interval", "1h", *capture]) == 0
        hour = 1_723_158_000_000  # 2024-08-08T23:00Z
        [short] = dynamodb.get_candles(
            aws.clients.dynamodb, aws.spec.table.name, [("BTCUSDT", Interval.H1, hour)]
        ).values()
        assert short.trade_count == reference_candles(trades, Interval.H1.ms)[
            ("BTCUSDT", hour)
        ].trade_count - len(OUTAGE)

        # Repair by hand, as a user would, for the window the gap names.
        window = ["--start", iso_time(gap.start_ms), "--end", iso_time(gap.end_ms)]
        assert main(["backfill", *window]) == 0
        assert rest.paths.count("/api/v3/historicalTrades") == 3  # 2,500 ids: 1000 per page

    assert_candles_equal_the_trades(aws, trades, ("BTCUSDT", "ETHUSDT"))
    capsys.readouterr()
    assert main(["gaps", "--all", "--format", "json"]) == 0
    [after] = json.loads(capsys.readouterr().out)
    assert after["state"] == "filled"
