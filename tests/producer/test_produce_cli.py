"""``candleflow produce``: argument handling, a replay into SQS, and a clear error when Binance is down."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from cli.produce import register, run_cli
from tests.conftest import AwsEnv, free_port
from tests.fakes.binance_ws import BTC_0808
from tests.producer.support import drain_lines, trade_frames, trade_line


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="candleflow")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_arguments_default_to_binance_at_recorded_speed() -> None:
    args = parse("produce")
    assert (args.source, args.symbols, args.speed, args.files) == ("binance", None, 1.0, [])
    assert args.func is run_cli


def test_replay_arguments_are_parsed() -> None:
    args = parse(
        "produce",
        "--source",
        "replay",
        "--symbols",
        "btcusdt, ethusdt",
        "--speed",
        "max",
        "a.gz",
        "b.gz",
    )
    assert args.symbols == ["BTCUSDT", "ETHUSDT"]
    assert args.speed is None
    assert args.files == [Path("a.gz"), Path("b.gz")]
    assert parse("produce", "--speed", "2.5").speed == 2.5


@pytest.mark.parametrize("argv", [["--speed", "0"], ["--speed", "fast"], ["--symbols", "BTC-USDT"]])
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("produce", *argv)
    assert "produce: error" in capsys.readouterr().err


def test_replay_sends_the_capture_and_prints_a_summary(
    aws: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("produce", "--source", "replay", "--speed", "max", str(BTC_0808))
    assert run_cli(args, aws.settings) == 0
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("produced 9757 trades in ")
    assert summary.endswith("dropped 0, malformed 0")
    assert sorted(drain_lines(aws)) == sorted(trade_line(f) for f in trade_frames(BTC_0808))


def test_replay_without_files_is_a_usage_error(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_cli(parse("produce", "--source", "replay"), aws.settings) == 2
    assert "needs at least one capture FILE" in caplog.text


def test_unreachable_binance_fails_with_the_url_and_the_reason(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    settings = aws.settings.model_copy(update={"binance_ws_url": url})
    with caplog.at_level(logging.ERROR):
        assert run_cli(parse("produce", "--symbols", "BTCUSDT"), settings) == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"cannot connect to Binance at {url}/stream?streams=btcusdt@trade" in error
    assert "Connect call failed" in error or "refused" in error.lower()
    assert capsys.readouterr().out == ""
