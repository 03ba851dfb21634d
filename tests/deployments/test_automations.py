"""The unresponsive-run automation on a real Prefect server: a killed run is marked Crashed.

Real flow runs in real processes send their own heartbeats; the processes are SIGKILLed. The
automation under test watches a tag of its own, with 4 s heartbeats (12 s of silence), so the
test waits seconds, not the 90 s ``candleflow up`` uses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, tags
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled

from deployments.automations import (
    MISSED_HEARTBEATS,
    ensure,
    heartbeat_frequency,
    unresponsive_runs,
)

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 4  # the automation's assumption; the runs' own is Prefect's minimum, 30 s
STARTUP_TIMEOUT_S = 120


def test_ensure_creates_once_then_finds_it_unchanged_then_updates_it(prefect_harness: None) -> None:
    name = f"ensure {uuid.uuid4().hex[:8]}"

    async def scenario() -> list[Any]:
        outcomes: list[Any] = [await ensure(unresponsive_runs(30, tag="x", name=name))]
        outcomes.append(await ensure(unresponsive_runs(30, tag="x", name=name)))
        outcomes.append(await ensure(unresponsive_runs(60, tag="x", name=name)))
        async with get_client() as client:
            stored = await client.read_automations_by_name(name=name)
            for automation in stored:
                await client.delete_automation(automation.id)
        outcomes.append([a.trigger.within.total_seconds() for a in stored])  # type: ignore[union-attr]
        return outcomes

    assert asyncio.run(scenario()) == [
        "created",
        "unchanged",
        "updated",
        [60.0 * MISSED_HEARTBEATS],
    ]


def test_heartbeats_switched_off_are_refused_with_the_setting_named() -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    off = temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    with off, pytest.raises(SystemExit, match="PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
        heartbeat_frequency()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}):
        assert heartbeat_frequency() == 45


def _start_sleeper(tag: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "DO_NOT_TRACK": "1",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.deployments.sleeper", tag],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _run_id(proc: subprocess.Popen[bytes], log: Path) -> uuid.UUID:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        for line in log.read_text().splitlines():
            if line.startswith("running "):
                return uuid.UUID(line.removeprefix("running ").strip())
        if proc.poll() is not None:
            raise AssertionError(f"the sleeper exited ({proc.returncode}):\n{log.read_text()}")
        assert time.monotonic() < deadline, f"no run in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}"
        time.sleep(0.2)


async def _heartbeats(run_id: uuid.UUID) -> int:
    async with get_client() as client:
        page = await client.read_events(
            filter=EventFilter(
                event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]),
            ),
            limit=50,  # the client's default (100) is over the server's own maximum
        )
    return len(page.events)


async def _state(run_id: uuid.UUID) -> tuple[StateType, str]:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    assert run.state is not None
    return run.state.type, run.state.message or ""


@pytest.fixture
def sleepers(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@flow(name="candleflow-test-quick")
def quick() -> str:
    time.sleep(0.5)
    return "done"


def test_a_killed_run_is_marked_crashed_and_a_finished_or_unwatched_one_is_not(
    prefect_harness: None, sleepers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    tag = f"watched-{uuid.uuid4().hex[:8]}"
    automation = unresponsive_runs(HEARTBEAT_S, tag=tag, name=f"test {tag}")
    assert asyncio.run(ensure(automation)) == "created"
    left_running: list[uuid.UUID] = []
    try:
        logs = [tmp_path / "watched.log", tmp_path / "unwatched.log"]
        sleepers.append(_start_sleeper(tag, logs[0]))
        sleepers.append(_start_sleeper(f"other-{tag}", logs[1]))
        watched, unwatched = (_run_id(p, log) for p, log in zip(sleepers, logs, strict=True))
        left_running.append(unwatched)
        with tags(tag):
            finished = quick(return_state=True)
        assert finished.is_completed()
        finished_id = finished.state_details.flow_run_id
        assert finished_id is not None

        deadline = time.monotonic() + 60
        while not all(asyncio.run(_heartbeats(r)) for r in (watched, unwatched, finished_id)):
            assert time.monotonic() < deadline, "the runs' first heartbeats never arrived"
            time.sleep(0.5)
        for proc in sleepers:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert asyncio.run(_state(watched))[0] == StateType.RUNNING  # nothing reported the kill
        killed_at = time.monotonic()

        deadline = killed_at + 60
        while (state := asyncio.run(_state(watched)))[0] != StateType.CRASHED:
            assert state[0] == StateType.RUNNING, state
            assert time.monotonic() < deadline, "the killed run was not marked Crashed in 60 s"
            time.sleep(0.5)
        waited = time.monotonic() - killed_at
        assert "No heartbeat for 0:00:12" in state[1]
        # Not before the silence the automation allows (measured from the kill, after the
        # heartbeat: the bound is loose by the heartbeat's travel time).
        assert waited >= HEARTBEAT_S * MISSED_HEARTBEATS - 5, waited

        assert asyncio.run(_state(unwatched))[0] == StateType.RUNNING  # another tag: not ours
        assert asyncio.run(_state(finished_id))[0] == StateType.COMPLETED
    finally:

        async def clean_up() -> None:
            async with get_client() as client:
                for found in await client.read_automations_by_name(name=automation.name):
                    await client.delete_automation(found.id)
                for run_id in left_running:
                    await client.set_flow_run_state(run_id, Cancelled(), force=True)

        asyncio.run(clean_up())
