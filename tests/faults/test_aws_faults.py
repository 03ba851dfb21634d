"""The ingest flow under AWS faults: throttling, 5xx and lost responses on every service it calls.

The flow runs in-process with boto3 pointed at ``FlakyAws`` (a proxy in front of moto), which refuses
a fixed schedule of calls the way AWS does. Most faults are absorbed by botocore's own retries; two
requests are refused more often than botocore tries (standard mode: the first try and 5 retries), so
the Prefect task retry on the decorator is what recovers. Whatever happened, every candle must equal the independent
computation and every trade be in the lake exactly once.
"""

from __future__ import annotations

import gzip
import random
import threading
from uuid import UUID

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun

from flows.ingest_trades import ingest_trades
from tasks.aws import dynamodb, s3, sqs
from tasks.core.models import Interval
from tasks.ingest import IngestReport
from tests.builders import BASE_TIME, Trade, capture_trades
from tests.conftest import AwsEnv
from tests.fakes.flaky_aws import FlakyAws, every, first, nth, server_error, throttle
from tests.flows.test_ingest_trades import assert_exact_candles, send_lines

CAPTURES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
# tasks/aws/clients.py: standard mode, ``max_attempts=5`` retries after the first try.
BOTOCORE_ATTEMPTS = 1 + 5
# The one minute whose first candle write is refused more often than botocore tries.
EXHAUSTED_KEY = ("BTCUSDT_1m", "2024-08-08T23:57:00Z")


def deliveries(trades: list[Trade], seed: int, per_message: int) -> list[list[str]]:
    """The trades shuffled, some twice, split into message bodies, and a few bodies sent twice."""
    rnd = random.Random(seed)
    delivered = trades + rnd.sample(trades, len(trades) // 10)
    rnd.shuffle(delivered)
    bodies = [
        [t.line() for t in delivered[i : i + per_message]]
        for i in range(0, len(delivered), per_message)
    ]
    return bodies + rnd.sample(bodies, 2)


def lake_lines(aws: AwsEnv) -> list[str]:
    """Every raw NDJSON line in the lake, as many times as it is stored."""
    lines: list[str] = []
    bucket = aws.spec.bucket
    for key in s3.list_keys(aws.clients.s3, bucket.name, bucket.raw_prefix + "/"):
        lines += gzip.decompress(s3.get(aws.clients.s3, bucket.name, key)).decode().splitlines()
    return lines


def assert_queues_empty(aws: AwsEnv) -> None:
    assert sqs.depth(aws.clients.sqs, aws.resources.queue_url) == (0, 0)
    assert sqs.depth(aws.clients.sqs, aws.resources.dlq_url) == (0, 0)


def task_runs(flow_run_id: UUID) -> list[TaskRun]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


@pytest.mark.parametrize(
    ("service", "operation", "call"),
    [
        ("sqs", "ListQueues", "list_queues"),
        ("dynamodb", "ListTables", "list_tables"),
        ("s3", "ListBuckets", "list_buckets"),
        ("glue", "GetDatabases", "get_databases"),
        ("sns", "ListTopics", "list_topics"),  # query protocol: XML errors
    ],
)
def test_the_proxy_answers_each_services_own_faults_and_holds_and_drops_requests(
    moto_endpoint: str, service: str, operation: str, call: str
) -> None:
    with FlakyAws(moto_endpoint) as proxy:
        client = boto3.session.Session().client(  # type: ignore[call-overload]
            service,
            endpoint_url=proxy.url,
            region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),
        )
        faults = [throttle(service), server_error(service, 500), server_error(service, 503)]
        for fault in faults:
            proxy.inject(f"{service}:{operation}", fault, first(1))
        for fault in faults:
            with pytest.raises(ClientError) as refused:
                getattr(client, call)()
            error = refused.value.response
            assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
                fault.code,
                fault.status,
            )
        getattr(client, call)()  # the schedules are spent: forwarded to moto
        assert proxy.calls[f"{service}:{operation}"] == 4
        assert proxy.forwarded[f"{service}:{operation}"] == 1
        assert proxy.injected(kind="throttle") == 1 and proxy.injected(kind="server-error") == 2

        held = proxy.hold(f"{service}:{operation}")
        dropped: list[BaseException] = []

        def blocked() -> None:
            try:
                getattr(client, call)()
            except Exception as exc:
                dropped.append(exc)

        caller = threading.Thread(target=blocked)
        caller.start()
        assert held.arrived.wait(10)
        held.release()  # the connection closes without an answer
        caller.join(10)
        assert len(dropped) == 1 and isinstance(dropped[0], ConnectionClosedError)
        assert proxy.forwarded[f"{service}:{operation}"] == 1

        # A lost response: moto answers, the client hears the fault.
        proxy.inject(f"{service}:{operation}", server_error(service), first(1), lost=True)
        with pytest.raises(ClientError):
            getattr(client, call)()
        assert proxy.forwarded[f"{service}:{operation}"] == 2
        assert proxy.injected(lost=True) == 1


def schedule_faults(proxy: FlakyAws) -> None:
    """Throttles and 5xx on every AWS operation of a batch, some answered after AWS applied them.

    Throttling is backed off from a 1 s base by botocore, so there are few; 5xx cost milliseconds.
    Rules are tried in order, so the exhausting one comes first.
    """
    # Refused before AWS saw them, more times than botocore tries: Prefect's task retry recovers.
    exhaust = first(BOTOCORE_ATTEMPTS)
    proxy.inject("dynamodb:PutItem", server_error("dynamodb", 503), exhaust, match=EXHAUSTED_KEY)
    proxy.inject("sqs:DeleteMessageBatch", server_error("sqs", 503), exhaust)
    # Absorbed by botocore's retries.
    proxy.inject("sqs:ReceiveMessage", throttle("sqs"), nth(2))
    proxy.inject("sqs:ReceiveMessage", server_error("sqs"), nth(4))
    proxy.inject("sqs:DeleteMessageBatch", throttle("sqs"), nth(2))
    proxy.inject("s3:PutObject", throttle("s3"), nth(4))
    proxy.inject("s3:PutObject", server_error("s3"), every(6))
    proxy.inject("dynamodb:PutItem", throttle("dynamodb"), nth(5))  # a minute's first kline
    proxy.inject("dynamodb:PutItem", server_error("dynamodb"), every(8))
    proxy.inject("dynamodb:UpdateItem", throttle("dynamodb"), nth(9))  # later trades of a minute
    proxy.inject("dynamodb:UpdateItem", server_error("dynamodb"), every(8))
    proxy.inject("dynamodb:BatchGetItem", throttle("dynamodb"), nth(2))
    proxy.inject("dynamodb:BatchGetItem", server_error("dynamodb"), nth(1, 4))
    proxy.inject("dynamodb:Query", server_error("dynamodb", 503), every(5))
    proxy.inject("glue:BatchCreatePartition", throttle("glue"), nth(1))
    proxy.inject("glue:BatchCreatePartition", server_error("glue"), nth(3))
    # Lost responses: AWS applied the write, the client hears a 500 and writes again.
    proxy.inject("sqs:DeleteMessageBatch", server_error("sqs"), nth(2), lost=True)
    proxy.inject("s3:PutObject", server_error("s3"), every(7), lost=True)
    proxy.inject("dynamodb:PutItem", server_error("dynamodb"), every(7), lost=True)
    proxy.inject("dynamodb:UpdateItem", server_error("dynamodb"), every(7), lost=True)
    proxy.inject("glue:BatchCreatePartition", server_error("glue"), nth(2), lost=True)


def test_throttling_5xx_and_lost_responses_on_every_service_leave_candles_and_lake_exact(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = capture_trades(*CAPTURES)
    send_lines(aws, deliveries(trades, seed=11, per_message=1200))
    with FlakyAws(aws.endpoint) as proxy:
        schedule_faults(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
        monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", "10")
        state = ingest_trades(until_empty=True, return_state=True)
    assert state.is_completed(), state
    report = state.result()
    assert isinstance(report, IngestReport)

    # The faults really happened, of every kind, on every operation scheduled.
    for operation in (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessageBatch",
        "s3:PutObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
        "glue:BatchCreatePartition",
    ):
        assert proxy.injected(operation, "throttle") > 0, operation
        assert proxy.injected(operation, "server-error") > 0, operation
    assert proxy.injected("dynamodb:Query", "server-error") > 0
    for operation in (
        "sqs:DeleteMessageBatch",
        "s3:PutObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "glue:BatchCreatePartition",
    ):
        assert proxy.injected(operation, lost=True) > 0, operation

    # botocore gave up on the first delete (6 refusals in a row) and on the first write of one
    # minute; Prefect's task retries did them.
    assert proxy.calls["sqs:DeleteMessageBatch"] > report.batches + BOTOCORE_ATTEMPTS
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    retried = {r.name.rsplit("-", 1)[0] for r in task_runs(flow_run_id) if r.run_count >= 2}
    assert {"delete_messages", "upsert_candles"} <= retried

    # And yet: exact candles, each trade counted once and in the lake once, nothing left over.
    assert report.new_trades == len({(t.symbol, t.trade_id) for t in trades})
    assert report.rejects == report.dead_lettered == 0
    assert_exact_candles(aws, trades)
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in trades)
    assert_queues_empty(aws)


def test_a_lost_candle_write_response_still_marks_and_exports_the_hour_of_the_minute(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    minute = 60_000
    last_of_the_day, first_of_the_next = BASE_TIME + 4 * minute, BASE_TIME + 5 * minute
    trades = [
        Trade(trade_id=1, trade_time=last_of_the_day),
        Trade(trade_id=2, trade_time=first_of_the_next),
    ]
    send_lines(aws, [[t.line() for t in trades]])
    with FlakyAws(aws.endpoint) as proxy:
        # DynamoDB applies the write of 2024-08-09T00:00; the worker hears a 500.
        match = ("BTCUSDT_1m", "2024-08-09T00:00:00Z")
        proxy.inject("dynamodb:PutItem", server_error("dynamodb"), first(1), lost=True, match=match)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
        report = ingest_trades(until_empty=True)
    assert proxy.injected(lost=True) == 1
    assert_exact_candles(aws, trades)  # holds: the candles themselves are right
    hours = {hour_of(last_of_the_day), hour_of(first_of_the_next)}
    markers = dynamodb.dirty_markers(aws.clients.dynamodb, aws.spec.table.name, Interval.H1)
    bucket = aws.spec.bucket
    exported = list(s3.list_keys(aws.clients.s3, bucket.name, bucket.candles_prefix + "/"))
    marked = {m.open_time for m in markers}
    assert (report.candles_written, len(exported), marked) == (2, 2, hours)


def hour_of(ms: int) -> int:
    return ms - ms % Interval.H1.ms
