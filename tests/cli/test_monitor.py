"""`candleflow monitor` against the real services: a moto server with state put in through the
product's own adapters, a Prefect test server with a real flow run, and the command run as a
process (a pipe for `--once`, a pseudo-terminal for the full-screen view)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from prefect import flow
from prefect.settings import PREFECT_API_URL, temporary_settings
from rich.console import Console

from cli.monitor import Sources, show_once
from cli.monitor_view import Snapshot, Target, frame, human_seconds, measured_rates
from tasks.aws import dynamodb, gap_records, sqs, status_records
from tasks.core.candles import aggregate
from tasks.core.gaps import Gap
from tasks.core.heartbeat import IngestBeat, ProducerBeat
from tasks.core.keys import iso_time
from tasks.status import PipelineStatus, QueueStatus
from tests.builders import BASE_TIME, capture_trades, trades_frame
from tests.conftest import AwsEnv, free_port

ROOT = Path(__file__).resolve().parents[2]
PRODUCER = "probe-producer"


@flow(name="monitor-probe", flow_run_name="monitor-probe-run")
def monitor_probe() -> int:
    return 1


def put_state(aws: AwsEnv, now_ms: int) -> dict[str, int]:
    """Three messages waiting, one dead letter, beats, two BTCUSDT candles and an open gap."""
    client, table = aws.clients.sqs, aws.spec.table.name
    queue = sqs.queue_url(client, aws.spec.queue.name)
    sqs.send_batch(client, queue, [sqs.OutgoingMessage(f"body {i}", {}) for i in range(3)])
    dlq = sqs.queue_url(client, aws.spec.queue.dlq_name)
    sqs.dead_letter(client, dlq, sqs.ReceivedMessage("m-1", "", "not base64", {}, 0, 1), "bad")
    trades = [t for t in capture_trades("spot_btcusdt_20240808.gz") if t.symbol == "BTCUSDT"]
    candles = aggregate(trades_frame(trades))[-2:]
    for candle in candles:
        dynamodb.put_candle(aws.clients.dynamodb, table, candle)
    last_trade_ms = max(t.trade_time for t in trades)
    status_records.record(
        aws.clients.dynamodb,
        table,
        IngestBeat(now_ms - 1_000, messages=3, trades=1_234, seconds=0.8, wait_ms=1_500),
        {"BTCUSDT": last_trade_ms},
        [ProducerBeat(PRODUCER, now_ms - 2_000, seq=12_345, lag_ms=250, rate=42.5)],
    )
    gap = Gap("BTCUSDT", 3735690000, 3735692499, candles[0].open_time, candles[-1].close_time)
    gap_records.record_new(aws.clients.dynamodb, table, [gap], now_ms)
    return {"last_candle_ms": candles[-1].open_time, "last_trade_ms": last_trade_ms}


def line_with(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def cells(text: str, first: str) -> list[str]:
    """The words of the first panel row whose first cell is ``first``, borders left out."""
    for line in text.splitlines():
        words = line.strip("│ ").split()
        if words and words[0] == first:
            return words
    raise AssertionError(f"no row starts with {first!r} in\n{text}")


def render_once(sources: Sources) -> tuple[int, str]:
    console = Console(width=220, record=True, file=io.StringIO())
    code = show_once(sources, console)
    return code, console.export_text()


def test_one_frame_shows_the_depths_beats_candles_gaps_and_flow_runs_put_in(
    aws: AwsEnv, prefect_harness: None
) -> None:
    put = put_state(aws, int(time.time() * 1000))
    assert monitor_probe() == 1

    before_ms = int(time.time() * 1000)
    code, text = render_once(Sources(aws.settings, aws.clients))
    after_ms = int(time.time() * 1000)

    assert code == 0, text
    top = line_with(text, f"prefix {aws.settings.prefix} ")
    assert f"endpoint {aws.endpoint}" in top and top.rstrip(" │").endswith("UTC  degraded")
    assert cells(text, aws.spec.queue.name)[1:4] == ["3", "0", "1"]  # depth, in flight, DLQ
    assert cells(text, aws.spec.samples_queue.name)[1:4] == ["0", "0", "0"]
    assert cells(text, PRODUCER)[1:6] == ["42.5", "-", "12,345", "250", "ms"]  # rate, -, sent, lag
    assert cells(text, "trades")[1] == "1,234" and cells(text, "waited")[1:] == ["1.5", "s"]
    symbol = line_with(text, "│ BTCUSDT ")
    assert iso_time(put["last_candle_ms"]) in symbol
    lags = {human_seconds((ms - put["last_trade_ms"]) / 1000) for ms in (before_ms, after_ms)}
    assert any(lag in symbol for lag in lags), (symbol, lags)
    assert cells(text, "BTCUSDT")[-2:] == ["1", "2,500"]  # open gaps, missing trades
    assert cells(text, "ETHUSDT")[1:] == ["-", "-", "0", "0"]  # nothing stored yet
    run = line_with(text, "monitor-probe-run")
    assert "monitor-probe " in run and "Completed" in run
    assert "1 messages in the dead-letter queue" in text
    assert "BTCUSDT: 1 open gaps (2500 trades)" in text


def test_once_exits_1_and_names_the_settings_when_the_stores_cannot_be_read(
    aws: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Sources(aws.settings.model_copy(update={"prefix": "nothing-here"}), aws.clients)
    code, text = render_once(other)
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot read the queues and tables at " + aws.endpoint in err
    assert "CANDLEFLOW_PREFIX=nothing-here" in err and "AWS_ENDPOINT_URL" in err
    assert "reading the stores failed: see Problems" in line_with(text, "failed")
    assert "cannot read the queues and tables" in text[text.index("╭─ Problems") :]


def test_a_failed_read_keeps_the_last_data_on_screen_and_says_from_when() -> None:
    status = PipelineStatus(
        checked_ms=BASE_TIME,
        queues=[QueueStatus("q-trades", 7, 2, "q-trades-dlq", 0)],
        oldest_message_age_s=None,
        ingest=None,
        producers=[],
        symbols=[],
    )
    snapshot = Snapshot(status=status, status_ms=BASE_TIME, status_error="cannot read: boom")
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(frame(Target("p", "us-east-1", "AWS"), snapshot, BASE_TIME + 5_000))
    text = console.export_text()
    assert cells(text, "q-trades")[1:4] == ["7", "2", "0"]
    assert "showing the read of 2024-08-08 23:55:00 UTC; reading the stores failed" in text
    assert "• cannot read: boom" in text and "degraded" in text


def test_an_unreachable_prefect_api_is_a_line_in_its_panel_not_a_failure(aws: AwsEnv) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with temporary_settings({PREFECT_API_URL: url}):
        code, text = render_once(Sources(aws.settings, aws.clients))
    assert code == 0, text
    assert f"Flow runs ({url})" in text
    assert (
        f"Prefect API at {url} unreachable: start it with ./scripts/start.sh or set PREFECT_API_URL"
        in text
    )
    assert cells(text, aws.spec.queue.name)[1:4] == ["0", "0", "0"]


def read_until(fd: int, needle: bytes, timeout_s: float) -> bytes:
    """What the terminal got until ``needle`` shows up (or the time is up, or the pty closes)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def what_went_wrong(proc: subprocess.Popen[bytes], shown: bytes) -> str:
    if proc.poll() is None:
        return f"still running; the terminal got {shown[-2000:]!r}"
    assert proc.stderr is not None
    return f"exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}"


def test_the_full_screen_view_shows_a_closed_prefect_api_and_quits_cleanly_on_sigterm(
    aws: AwsEnv,
) -> None:
    port = free_port()  # nothing listens there
    # The pseudo-terminal's size must rule: COLUMNS/LINES (set under pytest-xdist) would override it.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and k not in ("COLUMNS", "LINES")
    }
    env.update(
        {
            "CANDLEFLOW_PREFIX": aws.settings.prefix,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "DO_NOT_TRACK": "1",  # Prefect's first-run telemetry on an interactive terminal
            "TERM": "xterm-256color",
        }
    )
    terminal, screen = pty.openpty()
    fcntl.ioctl(screen, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 180, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "monitor", "--interval", "0.5"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=screen,
        stderr=subprocess.PIPE,
    )
    os.close(screen)
    try:
        shown = read_until(terminal, b"unreachable", 30)
        assert b"unreachable" in shown, what_went_wrong(proc, shown)
        assert f"Flow runs (http://127.0.0.1:{port}/api)".encode() in shown
        # The stores are read on their own thread: their first answer may come a frame later.
        # The Queues panel shows the trades queue (its name may be cut short with an ellipsis).
        queue = f"{aws.settings.prefix}-tr".encode()
        shown += read_until(terminal, queue, 30)
        assert queue in shown, what_went_wrong(proc, shown)
        assert b"\x1b[?1049h" in shown  # on the alternate screen
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)  # about 1 s on a quiet machine
        shown += read_until(terminal, b"\x1b[?25h", 2)
    finally:
        proc.kill()
        os.close(terminal)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert code == 0, err
    assert "Traceback" not in err
    assert shown.rindex(b"\x1b[?1049l") > shown.rindex(b"\x1b[?1049h")  # screen restored
    assert b"\x1b[?25h" in shown  # cursor shown again


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.35, "350 ms"),
        (1.5, "1.5 s"),
        (5, "5 s"),
        (42, "42 s"),
        (150, "2.5 min"),
        (7_200, "2.0 h"),
        (3.5 * 86_400, "3.5 d"),
        (2.3 * 365.25 * 86_400, "2.3 y"),
        (-3, "-3 s"),
    ],
)
def test_durations_read_at_a_glance(seconds: float, shown: str) -> None:
    assert human_seconds(seconds) == shown


def test_a_producer_rate_is_measured_from_its_count_between_reads() -> None:
    first = [ProducerBeat("a", 10_000, 1_000, 50, None), ProducerBeat("b", 10_000, 5, 50, None)]
    second = [ProducerBeat("a", 12_000, 1_300, 50, None), ProducerBeat("b", 10_000, 5, 50, None)]
    rates = measured_rates(first, second, {"b": 7.0})
    assert rates == {"a": 150.0, "b": 7.0}  # b's beat did not move: its last rate stays
    restarted = [ProducerBeat("a", 13_000, 10, 50, None)]
    assert measured_rates(second, restarted, rates) == {}
    assert measured_rates([], first, {}) == {}
