"""Serve the deployments listed in prefect.yaml from this process (no work pool needed).

prefect.yaml stays the only list of deployments: this reads it and hands each entry to
``prefect.serve``. ``python -m deployments.serve [NAME ...]`` serves all, or the named ones, after
making sure the automation that marks runs of a killed process Crashed exists
(deployments/automations.py).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentEntry:
    name: str
    entrypoint: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    concurrency_limit: int | None = None


def load_entries(path: Path = PREFECT_YAML) -> list[DeploymentEntry]:
    """The deployments of prefect.yaml, anchors resolved."""
    document = yaml.safe_load(path.read_text())
    return [
        DeploymentEntry(
            name=d["name"],
            entrypoint=d["entrypoint"],
            description=" ".join(str(d.get("description", "")).split()),
            parameters=dict(d.get("parameters") or {}),
            schedules=list(d.get("schedules") or []),
            tags=list(d.get("tags") or []),
            concurrency_limit=d.get("concurrency_limit"),
        )
        for d in document["deployments"]
    ]


def load_flow(entrypoint: str) -> Any:
    """``flows/ingest_trades.py:ingest_trades`` -> the flow object."""
    file, _, attr = entrypoint.partition(":")
    module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
    return getattr(module, attr)


def to_deployment(entry: DeploymentEntry) -> Any:
    from prefect.client.schemas.schedules import construct_schedule

    schedules = [
        construct_schedule(
            interval=timedelta(seconds=s["interval"]) if "interval" in s else None,
            cron=s.get("cron"),
            timezone=s.get("timezone"),
        )
        for s in entry.schedules
    ]
    return load_flow(entry.entrypoint).to_deployment(
        name=entry.name,
        description=entry.description,
        parameters=entry.parameters,
        schedules=schedules,
        tags=entry.tags,
        concurrency_limit=entry.concurrency_limit,
    )


def main(argv: list[str]) -> int:
    from prefect import serve

    from deployments import automations

    entries = [e for e in load_entries() if not argv or e.name in argv]
    if not entries:
        print(f"no deployment named {argv} in {PREFECT_YAML.name}", file=sys.stderr)
        return 2
    print(automations.install(), flush=True)
    serve(*(to_deployment(e) for e in entries))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
