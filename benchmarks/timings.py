"""Where a finished flow run's time went, read from the Prefect API: its task runs and subflow runs.

Task runs reach the API as events, a moment after the flow has returned; the reader waits until every
task run it sees is final and their number stops changing (or ``settle_s`` passes, which it says).
Times are each run's time in the Running state, summed by task (or flow) name.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

_POLL_S = 0.5


def _name(run_name: str) -> str:
    """A task run's task name: Prefect names runs ``<task>-<3 hex digits>``."""
    return run_name.rsplit("-", 1)[0]


def flow_run_timings(flow_run_id: str, settle_s: float = 30.0) -> dict[str, Any]:
    """``{"seconds", "tasks": {name: s}, "subflows": {name: {"seconds", "tasks"}}, "settled"}``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
    )

    deadline = time.monotonic() + settle_s
    seen = -1
    with get_client(sync_client=True) as client:
        while True:
            flow = client.read_flow_run(UUID(flow_run_id))
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow.id])
                )
            )
            ids = [flow.id, *(c.id for c in children)]
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200
            )
            final = all(r.state is not None and r.state.is_final() for r in runs)
            settled = final and len(runs) == seen
            if settled or time.monotonic() > deadline:
                break
            seen = len(runs)
            time.sleep(_POLL_S)
        names = {c.id: client.read_flow(c.flow_id).name for c in children}
    calls = {c.parent_task_run_id for c in children}  # the task runs standing for subflow calls
    by_flow: dict[UUID, dict[str, float]] = {i: {} for i in ids}
    for r in runs:
        if r.id in calls:
            continue
        tasks = by_flow[r.flow_run_id] if r.flow_run_id in by_flow else by_flow[flow.id]
        name = _name(r.name)
        tasks[name] = tasks.get(name, 0.0) + r.total_run_time.total_seconds()
    subflows: dict[str, dict[str, Any]] = {}
    for c in children:
        entry = subflows.setdefault(names[c.id], {"seconds": 0.0, "tasks": {}})
        entry["seconds"] += c.total_run_time.total_seconds()
        for name, s in by_flow[c.id].items():
            entry["tasks"][name] = entry["tasks"].get(name, 0.0) + s
    return {
        "seconds": flow.total_run_time.total_seconds(),
        "tasks": by_flow[flow.id],
        "subflows": subflows,
        "settled": settled,
    }
