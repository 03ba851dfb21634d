"""``prefect deploy --all`` registers prefect.yaml's deployments on a real Prefect server, and a
``prefect worker`` of the process work pool then runs one: the ingest, into candles on moto."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments.serve import PREFECT_YAML, load_entries
from tasks.aws import dynamodb
from tasks.core.models import Interval
from tests.builders import capture_trades, kline, reference_candles
from tests.conftest import AwsEnv
from tests.flows.test_ingest_trades import send_lines

ROOT = Path(__file__).parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "candleflow-local"


def prefect(*args: str, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run(
        [PREFECT, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


def test_deploy_all_then_a_process_worker_runs_the_ingest(
    aws: AwsEnv, prefect_harness: None
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "CANDLEFLOW_PREFIX": aws.settings.prefix,
        "CANDLEFLOW_SYMBOLS": "BTCUSDT",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    prefect("work-pool", "create", POOL, "--type", "process", "--overwrite", env=env)
    prefect("--no-prompt", "deploy", "--all", env=env)

    async def registered() -> dict[str, object]:
        async with get_client() as client:
            found = await client.read_deployments()
            return {d.name: d for d in found}

    deployments = asyncio.run(registered())
    names = [e.name for e in load_entries(PREFECT_YAML)]
    assert sorted(deployments) == sorted(names)
    for name in names:
        d = deployments[name]
        assert d.work_pool_name == POOL, name  # type: ignore[attr-defined]
    assert not deployments["backfill"].schedules  # type: ignore[attr-defined]
    ingest = deployments["ingest-trades"]
    assert ingest.parameters == {"max_seconds": 55, "until_empty": False}  # type: ignore[attr-defined]
    assert ingest.schedules[0].schedule.interval.total_seconds() == 60  # type: ignore[attr-defined]

    trades = capture_trades("spot_btcusdt_20240808.gz")
    send_lines(aws, [[t.line() for t in trades[i : i + 1000]] for i in range(0, len(trades), 1000)])
    prefect(
        "deployment",
        "run",
        "ingest-trades/ingest-trades",
        "--param",
        "until_empty=true",
        "--param",
        "max_seconds=60",
        env=env,
    )
    # The worker picks up the run (any scheduled run due at once too) and exits when they are done.
    prefect(
        "worker", "start", "--pool", POOL, "--type", "process", "--run-once", env=env, timeout=300
    )

    async def ingest_runs() -> list[str]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[ingest.id]))  # type: ignore[attr-defined]
            )
            return [r.state.type.value for r in runs if r.state is not None]

    assert "COMPLETED" in asyncio.run(ingest_runs())
    stored = {
        c.open_time: c
        for c in dynamodb.query_candles(
            aws.clients.dynamodb, aws.spec.table.name, "BTCUSDT", Interval.M1
        )
    }
    for (_, t), ref in reference_candles(trades).items():
        assert kline(stored[t]) == kline(ref)


pytestmark = pytest.mark.e2e
