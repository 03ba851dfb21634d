from __future__ import annotations

import time

import pytest

from tasks.aws import athena
from tasks.errors import QueryError
from tests.aws.moto_api import held_state, queue_athena_results
from tests.conftest import AwsEnv


def _output(aws: AwsEnv) -> str:
    return f"s3://{aws.spec.bucket.name}/{aws.spec.bucket.athena_results_prefix}/"


def test_the_workgroup_is_created_once(aws: AwsEnv) -> None:
    name = aws.spec.catalog.athena_workgroup
    assert athena.ensure_workgroup(aws.clients.athena, name, _output(aws)) is True
    assert athena.ensure_workgroup(aws.clients.athena, name, _output(aws)) is False


def test_a_query_waits_through_queued_and_running_and_returns_rows_without_the_header(
    aws: AwsEnv,
) -> None:
    wg = aws.spec.catalog.athena_workgroup
    athena.ensure_workgroup(aws.clients.athena, wg, _output(aws))
    queue_athena_results(
        aws.endpoint,
        ["symbol", "n", "low"],
        [["BTCUSDT", "9757", "61780.00000000"], ["X", "1", None]],
    )
    with held_state(aws.endpoint, "athena::execution", describes=1):
        result = athena.run_query(
            aws.clients.athena,
            "SELECT symbol, count(*) AS n, min(price) AS low FROM trades GROUP BY symbol",
            database=aws.spec.glue_database,
            workgroup=wg,
            output_location=_output(aws),
            timeout_s=30,
        )
    assert result.columns == ("symbol", "n", "low")
    assert result.rows == (("BTCUSDT", "9757", "61780.00000000"), ("X", "1", None))
    assert result.engine == "athena"


def test_a_query_past_its_deadline_is_stopped_and_reported(aws: AwsEnv) -> None:
    wg = aws.spec.catalog.athena_workgroup
    athena.ensure_workgroup(aws.clients.athena, wg, _output(aws))
    client = aws.clients.athena
    with held_state(aws.endpoint, "athena::execution", describes=10_000):
        query_id = athena.start_query(client, "SELECT 1", aws.spec.glue_database, wg, _output(aws))
        began = time.monotonic()
        with pytest.raises(QueryError, match="CANDLEFLOW_ATHENA_TIMEOUT_S"):
            athena.wait_for(client, query_id, timeout_s=0.5)
        assert time.monotonic() - began < 5
        state = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        assert state["Status"]["State"] == "CANCELLED"
        with pytest.raises(QueryError, match="cancelled"):
            athena.wait_for(client, query_id, timeout_s=0.5)
