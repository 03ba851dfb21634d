"""Athena adapter: run one query in a workgroup and read its rows, waiting at most until a deadline.

Athena runs queries asynchronously: ``StartQueryExecution``, then ``GetQueryExecution`` until the state
is final, then ``GetQueryResults`` pages. The wait is bounded: past ``timeout_s`` the query is stopped
and ``QueryError`` raised, so a stuck query never hangs a flow or the CLI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tasks.aws._errors import translate
from tasks.core.sql import QueryResult
from tasks.errors import QueryError

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.2
MAX_POLL_S = 2.0


def ensure_workgroup(client: AthenaClient, name: str, output_location: str) -> bool:
    """Create the workgroup (results under ``output_location``) unless it exists; True if created."""
    token: dict[str, str] = {}
    while True:  # ends: each page moves on to the next token until there is none
        with translate("athena", "ListWorkGroups", f"Athena workgroup {name}"):
            page = client.list_work_groups(MaxResults=50, **token)
        if any(w.get("Name") == name for w in page.get("WorkGroups", [])):
            return False
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    with translate("athena", "CreateWorkGroup", f"Athena workgroup {name}"):
        client.create_work_group(
            Name=name,
            Description="candleflow: SQL over the lake",
            Configuration={"ResultConfiguration": {"OutputLocation": output_location}},
        )
    log.info("created Athena workgroup %s", name)
    return True


def start_query(
    client: AthenaClient, sql: str, database: str, workgroup: str, output_location: str
) -> str:
    with translate("athena", "StartQueryExecution", f"Athena workgroup {workgroup}"):
        return client.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": database},
            WorkGroup=workgroup,
            ResultConfiguration={"OutputLocation": output_location},
        )["QueryExecutionId"]


def wait_for(
    client: AthenaClient,
    query_id: str,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Wait until the query succeeds and return its statement type (``DML``, ``DDL``...).

    Raises ``QueryError`` when it fails or is cancelled, and stops it when ``timeout_s`` passes first.
    """
    deadline = clock() + timeout_s
    delay = FIRST_POLL_S
    while True:
        with translate("athena", "GetQueryExecution", f"Athena query {query_id}"):
            execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        status = execution.get("Status", {})
        state = status.get("State", "QUEUED")
        if state == "SUCCEEDED":
            return execution.get("StatementType", "DML")
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason", "no reason given")
            raise QueryError(f"Athena query {query_id} {state.lower()}: {reason}")
        left = deadline - clock()
        if left <= 0:
            with translate("athena", "StopQueryExecution", f"Athena query {query_id}"):
                client.stop_query_execution(QueryExecutionId=query_id)
            raise QueryError(
                f"Athena query {query_id} still {state.lower()} after {timeout_s:g} s; stopped it "
                "(raise CANDLEFLOW_ATHENA_TIMEOUT_S for longer queries)"
            )
        sleep(min(delay, left))
        delay = min(delay * 2, MAX_POLL_S)


def fetch_result(client: AthenaClient, query_id: str, statement_type: str) -> QueryResult:
    """Every row of a finished query, as text; the header row Athena puts first for SELECT is dropped."""
    columns: tuple[str, ...] = ()
    rows: list[tuple[str | None, ...]] = []
    skip_header = statement_type == "DML"
    with translate("athena", "GetQueryResults", f"Athena query {query_id}"):
        pages = client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        for page in pages:
            result = page["ResultSet"]
            if not columns:
                info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = tuple(c["Name"] for c in info)
            for row in result.get("Rows", []):
                values = tuple(d.get("VarCharValue") for d in row.get("Data", []))
                if skip_header:
                    skip_header = False
                    if values == columns:
                        continue
                rows.append(values)
    return QueryResult(columns, tuple(rows), "athena")


def run_query(
    client: AthenaClient,
    sql: str,
    *,
    database: str,
    workgroup: str,
    output_location: str,
    timeout_s: float,
) -> QueryResult:
    query_id = start_query(client, sql, database, workgroup, output_location)
    log.info("Athena query %s started in workgroup %s", query_id, workgroup)
    statement_type = wait_for(client, query_id, timeout_s)
    return fetch_result(client, query_id, statement_type)
