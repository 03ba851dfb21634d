"""End to end: a price jump spliced into the real captures becomes exactly one alert in the inbox.

Real captures -> loopback Binance websocket -> producer -> SQS -> ingest -> DynamoDB, then the
detect-anomalies flow once per minute as its schedule would run it -> SNS -> the alerts inbox (SQS),
read with `candleflow alerts`. Every BTCUSDT trade of 00:01 is 5% dearer, so the 5-minute price
move fires for that minute, and clears the minute after, when the price is back.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from decimal import Decimal

import pytest

from cli.main import main
from flows.detect_anomalies import detect_anomalies
from flows.ingest_trades import ingest_trades
from producer.sources import BinanceSource
from tasks.core.keys import iso_time
from tests.conftest import AwsEnv
from tests.fakes.binance_ws import (
    BTC_0808,
    BTC_0809,
    ETH_0808,
    ETH_0809,
    RecordedFrame,
    capture_frames,
    fake_binance,
)
from tests.producer.support import produce_until_seen, trade_line

FILES = (BTC_0808, BTC_0809, ETH_0808, ETH_0809)
MINUTE = 60_000
JUMP = 1_723_161_660_000  # 2024-08-09T00:01Z
_PRICE = re.compile(r'"p":"([0-9.]+)"')
_TIME = re.compile(r'"T":(\d+)')

pytestmark = pytest.mark.e2e


def jumped(frame: RecordedFrame) -> RecordedFrame:
    """The frame with its price 5% higher if it is a BTCUSDT trade of the jump minute."""
    if frame.stream != "btcusdt@trade":
        return frame
    match = _TIME.search(frame.text)
    assert match is not None
    if not JUMP <= int(match.group(1)) < JUMP + MINUTE:
        return frame

    def dearer(m: re.Match[str]) -> str:
        return f'"p":"{(Decimal(m.group(1)) * Decimal("1.05")).quantize(Decimal("1E-8"))}"'

    return replace(frame, text=_PRICE.sub(dearer, frame.text, count=1))


def test_a_spliced_price_jump_is_one_alert_in_the_inbox(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frames = [jumped(f) for f in capture_frames(*FILES)]
    wanted = [trade_line(f) for f in frames if f.stream.endswith("@trade")]
    assert sum(f.text != g.text for f, g in zip(frames, capture_frames(*FILES), strict=True)) > 100

    async def produce() -> None:
        async with fake_binance(frames) as server:
            settings = aws.settings.model_copy(update={"binance_ws_url": server.url})
            source = BinanceSource(settings, ["BTCUSDT", "ETHUSDT"])
            await produce_until_seen(settings, source, aws, wanted, timeout_s=120)

    asyncio.run(produce())
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    assert ingest_trades(until_empty=True).new_trades == len(wanted)
    for minute in range(JUMP - 6 * MINUTE, JUMP + 5 * MINUTE, MINUTE):
        detect_anomalies(at=iso_time(minute + MINUTE))
    detect_anomalies(at=iso_time(JUMP + MINUTE))  # a re-run of the jump's minute: nothing new

    capsys.readouterr()
    assert main(["alerts", "--format", "json"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(a["kind"], a["symbol"], a["rule"], a["minute"]) for a in alerts] == [
        ("alert", "BTCUSDT", "price_move", iso_time(JUMP)),
        ("cleared", "BTCUSDT", "price_move", iso_time(JUMP + MINUTE)),
    ]
    alert = alerts[0]
    assert alert["severity"] == "critical"  # 5% is more than twice the 2% threshold
    assert Decimal(str(alert["value"])) > Decimal("4.5")
    assert str(alert["subject"]).startswith("BTCUSDT up ")
    assert str(alert["flow_run"]).startswith("http")
