"""The AWS emulator's server stops mid-ingest and comes back: the run recovers, counted once.

A second emulator server is started in this process on its own port: moto keeps its data in the
process, so stopping that server and starting a new one on the same port is a restart of the
endpoint with its data kept, as a persistent emulator (or AWS after an outage) would come back.
Meanwhile every connection is refused. The ingest runs against that endpoint in a thread; the server
is stopped as soon as the first batch is in the lake (its candle writes, partitions, deletes still
to come), kept down for a few seconds, then started again. botocore's retries give up, Prefect's
task retries (1 s, 5 s, 15 s) carry the batch over the outage.

The emulator's own state is in memory: ``candleflow down``/``up`` starts from a fresh one (``up``
provisions again). That is documented, not tested here.
"""

from __future__ import annotations

import threading
import time

import pytest

from flows.ingest_trades import ingest_trades
from infra.emulator import emulator
from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import s3
from tasks.aws.clients import AwsClients
from tasks.ingest import IngestReport
from tasks.settings import Settings
from tests.builders import capture_trades
from tests.conftest import AwsEnv, free_port
from tests.faults.test_aws_faults import assert_queues_empty, deliveries, lake_lines, task_runs
from tests.flows.test_ingest_trades import assert_exact_candles, send_lines

OUTAGE_S = 4.0


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout_s} s"
        time.sleep(0.02)


def test_the_emulator_restarting_mid_ingest_leaves_candles_and_lake_exact(
    moto_endpoint: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = emulator("127.0.0.1", port)
    server.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        settings = Settings(prefix=f"restart-{port}")
        spec = resource_spec(settings)
        clients = AwsClients()
        aws = AwsEnv(endpoint, settings, spec, provision(clients, spec), clients)
        trades = capture_trades("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
        send_lines(aws, deliveries(trades, seed=3, per_message=900))
        monkeypatch.setenv("CANDLEFLOW_PREFIX", settings.prefix)
        monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", "6")

        result: list[object] = []
        run = threading.Thread(
            target=lambda: result.append(ingest_trades(until_empty=True, return_state=True)),
            name="ingest",
        )
        run.start()
        bucket = spec.bucket

        def first_batch_in_the_lake() -> bool:
            return any(True for _ in s3.list_keys(clients.s3, bucket.name, bucket.raw_prefix))

        wait_until(first_batch_in_the_lake, 120, "the first lake write")
        server.stop()  # connections refused from here on
        stopped = time.monotonic()
        time.sleep(OUTAGE_S)
        server = emulator("127.0.0.1", port)
        server.start()
        outage = time.monotonic() - stopped
        run.join(300)
        assert not run.is_alive(), "the ingest did not finish after the emulator came back"

        (state,) = result
        assert state.is_completed(), state  # type: ignore[attr-defined]
        report = state.result()  # type: ignore[attr-defined]
        assert isinstance(report, IngestReport)
        assert outage >= OUTAGE_S
        # The outage really hit the run: tasks failed against the refused endpoint and were retried.
        flow_run_id = state.state_details.flow_run_id  # type: ignore[attr-defined]
        retried = {r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id) if r.run_count >= 2}
        assert retried, "no task was retried: the emulator stopped after the run's last call"
        assert report.new_trades == len({(t.symbol, t.trade_id) for t in trades})
        assert report.rejects == report.dead_lettered == 0
        assert_exact_candles(aws, trades)
        assert sorted(lake_lines(aws)) == sorted(t.line() for t in trades)
        assert_queues_empty(aws)
    finally:
        server.stop()
