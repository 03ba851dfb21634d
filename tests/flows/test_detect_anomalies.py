"""detect-anomalies on the moto server: real candles, stored alert state, SNS into the alerts inbox."""

from __future__ import annotations

import json
from functools import cache

import pytest

from cli.main import main
from flows.detect_anomalies import detect_anomalies
from tasks.aws import alert_records, sqs
from tasks.core.keys import iso_time
from tests.builders import Trade, capture_trades
from tests.conftest import AwsEnv
from tests.flows.test_ingest_trades import run_ingest, send_lines

FILES = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
MINUTE = 60_000
FIRST = 1_723_161_300_000  # 2024-08-08T23:55Z
LAST = 1_723_161_900_000  # 2024-08-09T00:05Z, the capture's last (partial) minute


@cache
def btc() -> list[Trade]:
    return capture_trades(*FILES)


@pytest.fixture
def env(aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_SYMBOLS", "BTCUSDT")
    trades = btc()
    send_lines(aws, [[t.line() for t in trades[i : i + 2000]] for i in range(0, len(trades), 2000)])
    run_ingest(aws, monkeypatch)
    return aws


def inbox(env: AwsEnv) -> list[dict[str, object]]:
    """Every alert in the inbox, consumed, oldest minute first."""
    out = []
    while got := sqs.receive(env.clients.sqs, env.resources.alerts_inbox_url, 10, 0):
        out += [json.loads(json.loads(m.body)["Message"]) for m in got]
        sqs.delete(env.clients.sqs, env.resources.alerts_inbox_url, [m.receipt_handle for m in got])
    return sorted(out, key=lambda a: str(a["minute"]))


def run_minutes(first: int, last: int, step: int = 1) -> None:
    """Scheduled runs every ``step`` minutes: each evaluates the minute before ``at``."""
    for minute in range(first, last + MINUTE, step * MINUTE):
        detect_anomalies(at=iso_time(minute + MINUTE))


def test_the_real_capture_raises_no_alert_at_default_thresholds(env: AwsEnv) -> None:
    run_minutes(FIRST, LAST)
    assert inbox(env) == []
    assert alert_records.recent(env.clients.dynamodb, env.spec.table.name) == []


def test_silence_alerts_once_reminds_after_the_cooldown_and_survives_restarts(
    env: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    # The capture's last trade is at 00:05:05; nothing arrives after it.
    silent_from = LAST + MINUTE
    # Every run is a new flow run, so the state between them is the stored one. Runs every 5 minutes
    # from 00:06 to 00:31 (a missed schedule changes nothing: each run judges its own minute).
    run_minutes(silent_from, silent_from + 25 * MINUTE, step=5)
    alerts = inbox(env)
    stale = [a for a in alerts if a["rule"] == "stale"]
    # Stale once the silence exceeds 5 minutes, then a reminder every 15 minutes (the cooldown).
    first = LAST + 6 * MINUTE
    assert [a["minute"] for a in stale] == [iso_time(first), iso_time(first + 15 * MINUTE)]
    assert stale[0]["kind"] == "alert" and stale[0]["symbol"] == "BTCUSDT"
    assert "no trades for" in str(stale[0]["subject"])
    assert [a for a in alerts if a["rule"] != "stale"] == []

    # Re-running a minute already evaluated publishes nothing, whatever it finds.
    report = detect_anomalies(at=iso_time(first + MINUTE))
    assert report.findings and report.published == ()
    assert inbox(env) == []
    # The CLI shows what lands in the inbox (here: one reminder published for a later minute).
    detect_anomalies(at=iso_time(first + 31 * MINUTE))
    assert main(["alerts"]) == 0
    out = capsys.readouterr().out
    assert f"{iso_time(first + 30 * MINUTE)}  CRITICAL  BTCUSDT stale: no trades for" in out
    assert main(["alerts"]) == 0  # consumed: the inbox is empty now
    assert capsys.readouterr().out == ""
