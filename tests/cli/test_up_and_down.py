"""`candleflow up` starts the real embedded stack (moto, Prefect server, served deployment, producer
replaying the shipped captures) and `candleflow down` stops exactly what it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prefect.events.schemas.automations import Automation

from deployments import automations
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def candleflow(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_runs_the_pipeline_offline_and_down_stops_only_its_processes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env.update(
        {
            "CANDLEFLOW_STATE_DIR": str(tmp_path / "state"),
            "CANDLEFLOW_EMULATOR_PORT": str(free_port()),
            "CANDLEFLOW_PREFECT_PORT": str(free_port()),
            "CANDLEFLOW_API_PORT": str(free_port()),
            "CANDLEFLOW_REPLAY_SPEED": "1000",
            "CANDLEFLOW_BINANCE_WS_URL": f"ws://127.0.0.1:{free_port()}",  # nothing listens there
        }
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        up = candleflow("up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Binance is not reachable" in up.stdout and "replaying" in up.stdout
        assert f"Prefect UI:    http://127.0.0.1:{env['CANDLEFLOW_PREFECT_PORT']}" in up.stdout
        assert "candleflow candles BTCUSDT --interval 1m" in up.stdout
        pids = {
            p.stem: int(p.read_text().split()[0]) for p in (tmp_path / "state/pids").glob("*.pid")
        }
        assert "Spreads:       sampling the replayed Binance books" in up.stdout
        assert set(pids) == {"aws", "prefect", "deployments", "api", "producer", "sampler"}
        api = f"http://127.0.0.1:{env['CANDLEFLOW_API_PORT']}"
        assert f"Dashboard:     {api}/   (API docs: {api}/docs)" in up.stdout

        stack_env = dict(env)
        for line in (tmp_path / "state/env").read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            if key != "PATH":
                stack_env[key] = value
        deadline = time.monotonic() + 150
        candles: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            shown = candleflow("candles", "ETHUSDT", "--format", "json", env=stack_env)
            candles = json.loads(shown.stdout or "[]")
            if len(candles) >= 12:  # 23:54 to 00:05: every minute of the replayed ETHUSDT captures
                break
            time.sleep(3)
        assert len(candles) == 12, candles
        official = next(c for c in candles if c["open_time"] == "2024-08-09T00:01:00.000Z")
        assert (official["open"], official["low"], official["close"]) == (
            "2679.4",
            "2673.6",
            "2677.41",
        )

        # The same candles through the API the dashboard draws from, and the dashboard itself.
        served = httpx.get(f"{api}/candles/ETHUSDT", params={"interval": "1m"}).json()["candles"]
        assert [(c["open_time"], c["close"]) for c in served] == [
            (c["open_time"].replace(".000Z", "Z"), c["close"]) for c in candles
        ]
        assert "<title>" in httpx.get(f"{api}/").text

        # The automation that marks runs of a killed process Crashed, on the 30 s heartbeats.
        prefect_api = f"http://127.0.0.1:{env['CANDLEFLOW_PREFECT_PORT']}/api"
        found = httpx.post(f"{prefect_api}/automations/filter", json={}).json()
        watch = [Automation.model_validate(a) for a in found if a["name"] == automations.NAME]
        assert len(watch) == 1 and watch[0].enabled, found
        assert getattr(watch[0].trigger, "within", None) == timedelta(seconds=90)

        # The operator's monitor, one frame of the running stack.
        frame = candleflow("monitor", "--once", env={**stack_env, "COLUMNS": "140"})
        assert frame.returncode == 0, frame.stderr
        assert "ETHUSDT" in frame.stdout and "2024-08-09T00:05:00Z" in frame.stdout
        assert "ingest-trades" in frame.stdout  # the first run: Running, or Completed by now
        assert "Running" in frame.stdout or "Completed" in frame.stdout

        down = candleflow("down", env=env, timeout=120)
        assert down.returncode == 0, down.stderr
        for name, pid in pids.items():
            # The replay producer may have finished on its own already; `down` says which.
            assert f"stopped {name}" in down.stdout or f"{name} had already exited" in down.stdout
            assert not Path(f"/proc/{pid}").exists() or _zombie(pid), name
        assert bystander.poll() is None  # not ours: left alone
        assert "nothing to stop" in candleflow("down", env=env).stdout
    finally:
        candleflow("down", env=env, timeout=120)
        bystander.kill()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
