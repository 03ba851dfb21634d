"""The Prefect automation candleflow relies on: a flow run whose process died is marked Crashed.

A running flow run emits a heartbeat event at its start and then every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (Prefect's setting: 180 by default, at least 30;
``candleflow up`` sets 30). When the process running it is killed (SIGKILL, the OOM killer, a lost
machine or container), nothing reports the run's end: it would show Running in the UI for ever.
The automation made here marks a run Crashed, with a message saying why, once ``MISSED_HEARTBEATS``
heartbeats in a row have not come and the run reached no final state. Only runs tagged
``candleflow`` (every deployment of prefect.yaml is) are watched. The work of a crashed run is not
lost: its messages come back to the queue after their visibility timeout and the next run writes
them once (every write is idempotent).

``candleflow up`` makes it when it serves the deployments; with ``prefect deploy`` and a worker, run
``python -m deployments.automations`` once against the same server, with the heartbeat frequency
the worker's flow runs use. Running it again changes nothing, or brings the automation up to date.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

NAME = "candleflow: crash unresponsive flow runs"
TAG = "candleflow"
MISSED_HEARTBEATS = 3
_FINAL = ("Completed", "Failed", "Cancelled", "Crashed")


def unresponsive_runs(heartbeat_s: int, tag: str = TAG, name: str = NAME) -> AutomationCore:
    """The automation: a ``tag``-ged flow run silent for ``MISSED_HEARTBEATS`` heartbeats of
    ``heartbeat_s`` after a heartbeat is moved to Crashed."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    silence = timedelta(seconds=MISSED_HEARTBEATS * heartbeat_s)
    return AutomationCore(
        name=name,
        description=(
            f"Marks a flow run tagged {tag!r} Crashed when it sent no heartbeat for {silence} and "
            "reached no final state: the process running it is gone. Made by candleflow "
            "(deployments/automations.py)."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in _FINAL)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=(
                    f"No heartbeat for {silence} ({MISSED_HEARTBEATS} x "
                    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY): the process running this flow run was "
                    "killed or lost. Its unfinished messages return to the queue and the next "
                    "run writes them once."
                ),
            )
        ],
    )


def _comparable(automation: Any) -> dict[str, Any]:
    fields = {"name", "description", "enabled", "trigger", "actions"}
    dumped: dict[str, Any] = automation.model_dump(mode="json", include=fields)
    return dumped


async def ensure(automation: AutomationCore) -> str:
    """Create ``automation`` on the current Prefect API, or update the one of its name to it.
    Returns "created", "updated" or "unchanged"."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        existing = await client.read_automations_by_name(name=automation.name)
        if not existing:
            await client.create_automation(automation=automation)
            return "created"
        current = existing[0]
        if _comparable(current) == _comparable(automation):
            return "unchanged"
        await client.update_automation(automation_id=current.id, automation=automation)
        return "updated"


def heartbeat_frequency() -> int:
    """Prefect's ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in this process, which must be the flow
    runs' own; a setting that turns heartbeats off is refused (no heartbeats, nothing to watch)."""
    from prefect.settings import get_current_settings

    seconds = get_current_settings().flows.heartbeat_frequency
    if seconds is None:
        raise SystemExit(
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY is unset: flow runs send no heartbeats, so a run "
            "whose process dies cannot be told from a running one. Set it (>= 30 s) where the "
            "flows run and here."
        )
    return int(seconds)


def install() -> str:
    """Make sure the automation exists for this process's heartbeat frequency; says what was done."""
    automation = unresponsive_runs(heartbeat_frequency())
    return f"automation {automation.name!r}: {asyncio.run(ensure(automation))}"


def main(argv: list[str]) -> int:
    argparse.ArgumentParser(
        prog="python -m deployments.automations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    print(install())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
