from __future__ import annotations

import asyncio
import csv
import io
import json
from decimal import Decimal

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort

from cli.main import main
from deployments.automations import TAG
from tasks.aws import dynamodb
from tasks.core.candles import aggregate
from tests.builders import BASE_TIME, Trade, trades_frame
from tests.conftest import AwsEnv
from tests.flows.test_ingest_trades import send_lines


@pytest.fixture
def cli_env(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    return aws


def store(aws: AwsEnv, trades: list[Trade]) -> None:
    for candle in aggregate(trades_frame(trades)):
        dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, candle)


def test_candles_prints_json_csv_and_a_table_within_the_window(
    cli_env: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    store(
        cli_env,
        [
            Trade(trade_id=1, price="61828.00", quantity="0.5", trade_time=BASE_TIME + 10),
            Trade(trade_id=2, price="61860.80", quantity="0.25", trade_time=BASE_TIME + 20),
            Trade(trade_id=3, price="61000.00", trade_time=BASE_TIME + 60_000),
        ],
    )
    assert main(["candles", "btcusdt", "--format", "json", "--end", "2024-08-08T23:55:00Z"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["open_time"] == "2024-08-08T23:55:00.000Z"
    assert row["close_time"] == "2024-08-08T23:55:59.999Z"
    assert (Decimal(row["open"]), Decimal(row["close"]), Decimal(row["volume"])) == (
        Decimal("61828"),
        Decimal("61860.8"),
        Decimal("0.75"),
    )
    assert Decimal(row["quote_volume"]) == Decimal("61828") * Decimal("0.5") + Decimal(
        "61860.8"
    ) * Decimal("0.25")
    assert main(["candles", "BTCUSDT", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["trade_count"] for r in rows] == ["2", "1"]
    assert main(["candles", "BTCUSDT"]) == 0
    assert "BTCUSDT 1m candles (2)" in capsys.readouterr().out


def test_candles_rejects_an_unknown_interval(cli_env: AwsEnv) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["candles", "BTCUSDT", "--interval", "5m"])
    assert exit_info.value.code == 2


def test_ingest_once_drains_the_queue_and_says_what_it_did(
    cli_env: AwsEnv, prefect_harness: None, capsys: pytest.CaptureFixture[str]
) -> None:
    send_lines(
        cli_env, [[Trade(trade_id=i, trade_time=BASE_TIME + i).line() for i in (1, 2)], ["{"]]
    )
    assert main(["ingest", "--once"]) == 0
    out = capsys.readouterr().out
    assert "2 messages, 2 trades (2 new, 0 duplicates), 1 rejected to quarantine" in out
    assert "rejected       1  not JSON" in out
    # Tagged like the deployments' runs: the unresponsive-run automation watches it too.
    assert TAG in asyncio.run(_latest_run("ingest-trades")).tags


async def _latest_run(flow_name: str) -> FlowRun:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    return runs[0]


def test_a_missing_queue_is_a_clear_error(
    moto_endpoint: str,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", "never-provisioned")
    monkeypatch.setenv("CANDLEFLOW_SYMBOLS", "BTCUSDT")
    assert main(["provision"]) == 0  # and then it exists: provisioning is the fix the error names
    capsys.readouterr()
    monkeypatch.setenv("CANDLEFLOW_PREFIX", "still-never-provisioned")
    assert main(["candles", "BTCUSDT"]) == 1
    assert "run `candleflow provision`" in capsys.readouterr().err
