from __future__ import annotations

from datetime import timedelta

from prefect.utilities.callables import parameter_schema

from deployments.serve import PREFECT_YAML, load_entries, load_flow, to_deployment


def test_every_prefect_yaml_entry_points_at_a_real_flow() -> None:
    entries = load_entries(PREFECT_YAML)
    assert [e.name for e in entries] == [
        "ingest-trades",
        "rollup-candles-1h",
        "rollup-candles-1d",
        "update-catalog",
        "detect-gaps",
        "backfill",
        "detect-anomalies",
        "ingest-spreads",
    ]
    for entry in entries:
        assert entry.name.startswith(load_flow(entry.entrypoint).name)


def test_schedules_parameters_and_limits_reach_the_served_deployments(
    prefect_harness: None,
) -> None:
    deployments = {e.name: to_deployment(e) for e in load_entries(PREFECT_YAML)}
    ingest = deployments["ingest-trades"]
    assert ingest.parameters == {"max_seconds": 55, "until_empty": False}
    [schedule] = ingest.schedules
    assert schedule.schedule.interval == timedelta(seconds=60)
    assert ingest.concurrency_limit == 1
    hourly, daily = deployments["rollup-candles-1h"], deployments["rollup-candles-1d"]
    assert (hourly.parameters, daily.parameters) == ({"interval": "1h"}, {"interval": "1d"})
    assert hourly.schedules[0].schedule.cron == "1 * * * *"
    assert daily.schedules[0].schedule.cron == "1 0 * * *"
    assert daily.schedules[0].schedule.timezone == "UTC"
    [every5] = deployments["update-catalog"].schedules
    assert every5.schedule.interval == timedelta(minutes=5)
    [every_minute] = deployments["detect-gaps"].schedules
    assert every_minute.schedule.interval == timedelta(seconds=60)
    manual = deployments["backfill"]
    assert manual.schedules == []  # run by hand from the UI, with start/end filled in there
    assert manual.parameters == {"fetch_missing": True}
    schema = parameter_schema(load_flow("flows/backfill.py:backfill").fn)  # the UI's run form
    assert {"start", "end", "symbols", "fetch_missing"} == set(schema.properties)
    assert schema.required == ["start"]
