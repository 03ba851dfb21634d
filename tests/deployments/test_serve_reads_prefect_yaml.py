from __future__ import annotations

from datetime import timedelta

from deployments.serve import PREFECT_YAML, load_entries, load_flow, to_deployment


def test_every_prefect_yaml_entry_points_at_a_real_flow() -> None:
    entries = load_entries(PREFECT_YAML)
    assert [e.name for e in entries] == ["ingest-trades"]
    for entry in entries:
        flow = load_flow(entry.entrypoint)
        assert flow.name == entry.name


def test_the_ingest_deployment_runs_every_minute_polling_for_55_seconds(
    prefect_harness: None,
) -> None:
    [entry] = load_entries(PREFECT_YAML)
    deployment = to_deployment(entry)
    assert deployment.parameters == {"max_seconds": 55, "until_empty": False}
    [schedule] = deployment.schedules
    assert schedule.schedule.interval == timedelta(seconds=60)
    assert deployment.concurrency_limit == 1
