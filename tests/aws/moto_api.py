"""The moto server's own control API: state transitions and canned Athena results, for adapter tests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _post(endpoint: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201), response.status


@contextmanager
def held_state(endpoint: str, model: str, describes: int) -> Iterator[None]:
    """Resources of ``model`` advance one state per ``describes`` descriptions, until the exit."""
    _post(
        endpoint,
        "state-manager/set-transition",
        {"model_name": model, "transition": {"progression": "manual", "times": describes}},
    )
    try:
        yield
    finally:
        _post(endpoint, "state-manager/unset-transition", {"model_name": model})


def queue_athena_results(endpoint: str, columns: list[str], rows: list[list[str | None]]) -> None:
    """The next Athena query gets these rows, with the header row first as Athena returns it."""

    def row(values: list[str | None]) -> dict[str, Any]:
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}

    info = [{"Name": c, "Label": c, "Type": "varchar"} for c in columns]
    body = {"results": [{"rows": [row(list(columns)), *map(row, rows)], "column_info": info}]}
    _post(endpoint, "static/athena/query-results", body)
