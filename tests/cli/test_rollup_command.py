from __future__ import annotations

import argparse

import pytest

from cli import rollup
from tasks.aws import dynamodb
from tasks.core.candles import aggregate
from tasks.core.models import Interval
from tasks.errors import ConfigError
from tasks.settings import Settings
from tests.builders import BASE_TIME, Trade, trades_frame
from tests.conftest import AwsEnv


def run(argv: list[str]) -> int:
    """``candleflow <argv>`` with only the rollup command registered (cli/main.py wires it)."""
    parser = argparse.ArgumentParser(prog="candleflow")
    rollup.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args, Settings()))


def test_rollup_re_rolls_a_window_and_prints_one_line(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    trades = [
        Trade(symbol=s, trade_id=i, trade_time=BASE_TIME + i)
        for i, s in enumerate(["BTCUSDT", "ETHUSDT"], 1)
    ]
    for candle in aggregate(trades_frame(trades)):
        dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, candle)
    argv = ["rollup", "--interval", "1d", "--start", "2024-08-08", "--end", "2024-08-08T23:59"]
    assert run([*argv, "--symbols", "ethusdt"]) == 0
    assert (
        "rollup 1d: 1 parent candles checked: 0 written (0 1h, 0 1d), 0 unchanged, "
        "1 without children; 0 dirty markers cleared, 0 kept (marked again meanwhile)\n"
    ) in capsys.readouterr().out  # a 1d run reads 1h candles, and none is rolled yet
    assert run(["rollup", "--start", "2024-08-08T23:00:00Z", "--end", "2024-08-08T23:00:00Z"]) == 0
    assert "rollup 1h: 4 parent candles checked: 4 written (2 1h, 2 1d)" in capsys.readouterr().out
    assert run(argv) == 0
    assert (
        "2 parent candles checked: 0 written (0 1h, 0 1d), 2 unchanged" in capsys.readouterr().out
    )
    [day] = dynamodb.query_candles(
        aws.clients.dynamodb, aws.spec.table.name, "ETHUSDT", Interval.D1
    )
    assert (day.open_time, day.trade_ids) == (Interval.D1.floor(BASE_TIME), ((2, 2),))


def test_rollup_refuses_a_bad_window(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    for argv in (["rollup", "--start", "yesterday"], ["rollup", "--interval", "1m"]):
        with pytest.raises(SystemExit) as exit_info:
            run(argv)
        assert exit_info.value.code == 2
    assert "'yesterday' is not ISO-8601" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="needs a start"):
        run(["rollup", "--end", "2024-08-08T23:00:00Z"])
