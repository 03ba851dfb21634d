"""A worker killed mid-batch (SIGKILL), then restarted: the redelivered batch is counted once.

``candleflow ingest --once`` runs as a real process with boto3 pointed at ``FlakyAws``. The proxy
holds every request of one operation: ``DeleteMessageBatch`` (the batch is in the lake and the
candles table by then) or ``PutItem`` (the first write of a kline: the batch is in the lake, no candle holds it yet). The
worker is killed there, nothing it sent after reaches AWS, and once the visibility timeout has
passed ``ingest --once`` runs again, in this process (a second cold start would cost ~15 s of CPU),
with another batch size, so the redelivered messages are grouped differently.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from cli.main import main
from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import sqs
from tasks.aws.clients import AwsClients
from tasks.settings import Settings
from tasks.validate import warm_up
from tests.builders import capture_trades
from tests.conftest import AwsEnv
from tests.fakes.flaky_aws import FlakyAws
from tests.faults.test_aws_faults import (
    assert_queues_empty,
    deliveries,
    lake_lines,
)
from tests.flows.test_ingest_trades import assert_exact_candles, send_lines, stored

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT_S = 10  # the smallest the settings allow: the wait this test cannot avoid
STARTUP_TIMEOUT_S = 120  # a cold worker imports Prefect and great-expectations
_envs = itertools.count(1)
SUMMARY = re.compile(
    r"ingest: (?P<messages>\d+) messages, (?P<trades>\d+) trades "
    r"\((?P<new>\d+) new, (?P<duplicates>\d+) duplicates\)"
)


def short_visibility_env(moto_endpoint: str) -> AwsEnv:
    """A fresh provisioned environment whose trades queue redelivers after 10 s, not 120 s."""
    settings = Settings(
        prefix=f"crash{next(_envs)}-{os.getpid()}", visibility_timeout_s=VISIBILITY_TIMEOUT_S
    )
    spec = resource_spec(settings)
    clients = AwsClients()
    return AwsEnv(moto_endpoint, settings, spec, provision(clients, spec), clients)


def start_ingest(aws: AwsEnv, endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    """``candleflow ingest --once`` as its own process, its output to ``log`` (a pipe nobody
    reads while the test waits could fill up and stall it)."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "CANDLEFLOW_PREFIX": aws.settings.prefix,
        "CANDLEFLOW_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "CANDLEFLOW_BATCH_MAX_MESSAGES": "7",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "ingest", "--once"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(event: threading.Event, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for ``event``, failing at once with the worker's output if the worker exits first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not event.wait(0.1):
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited ({proc.returncode}):\n{log.read_text()}")
        assert time.monotonic() < deadline, f"nothing in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}"


def wait_until_redeliverable(aws: AwsEnv) -> None:
    """Until no message of the queue is in flight: the killed worker's visibility has run out."""
    deadline = time.monotonic() + VISIBILITY_TIMEOUT_S + 30
    while sqs.depth(aws.clients.sqs, aws.resources.queue_url)[1]:
        assert time.monotonic() < deadline, "messages still in flight long after the timeout"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "held",
    ["sqs:DeleteMessageBatch", "dynamodb:PutItem"],
    ids=["after-all-writes", "between-lake-and-candles"],
)
def test_a_worker_killed_mid_batch_leaves_everything_counted_and_stored_once(
    held: str,
    moto_endpoint: str,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    aws = short_visibility_env(moto_endpoint)
    trades = capture_trades("spot_btcusdt_20240808.gz")
    bodies = deliveries(trades, seed=5, per_message=700)
    send_lines(aws, bodies)
    distinct = {t.line() for t in trades}

    with FlakyAws(moto_endpoint) as proxy:
        hold = proxy.hold(held)
        log = tmp_path / "killed-worker.log"
        worker = start_ingest(aws, proxy.url, log)
        try:
            wait_for(hold.arrived, worker, log)
            # The first batch's trades are in the lake; in candles too if the delete was held.
            before = lake_lines(aws)
            assert before and len(before) < len(distinct)
            counted = sum(c.trade_count for c in stored(aws, "BTCUSDT").values())
            assert counted == (len(before) if held.startswith("sqs:") else 0)
            worker.send_signal(signal.SIGKILL)
            assert worker.wait(timeout=30) == -signal.SIGKILL
        finally:
            worker.kill()
            worker.wait()
        hold.release()  # dropped: the worker that sent it is gone, AWS never sees it
        assert proxy.forwarded[held] == 0

    # The restarted worker (here in-process: a cold start costs ~15 s of CPU) drains the queue
    # once SQS redelivers, with another batch size: the messages are grouped differently. It
    # starts up (great-expectations) while SQS still holds the messages back.
    warming = threading.Thread(target=warm_up, name="warm-up")
    warming.start()
    wait_until_redeliverable(aws)
    warming.join()
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", "100")
    capsys.readouterr()
    assert main(["ingest", "--once"]) == 0
    out = capsys.readouterr().out

    # It saw every trade again and counted only those the first worker had not stored.
    summary = SUMMARY.search(out)
    assert summary is not None, out
    assert int(summary["messages"]) == len(bodies)
    assert int(summary["new"]) == len(distinct) - counted
    assert_exact_candles(aws, trades)
    # Redelivered and regrouped, the first batch's trades were not written to the lake again.
    lines = lake_lines(aws)
    assert sorted(lines) == sorted(distinct), (len(lines), len(set(lines)), len(distinct))
    assert_queues_empty(aws)
