"""The benchmark's own services, each a subprocess on a free loopback port: moto and a Prefect server.

Running moto in its own process (not ``ThreadedMotoServer``) keeps its CPU and memory out of the ingest
process, so the ingest RSS and profile are honest. The Prefect server gets a throw-away ``PREFECT_HOME``,
so its SQLite database and profiles never touch the user's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MOTO_START_TIMEOUT_S = 60.0
PREFECT_START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Service:
    """A running service: where it listens and the pid of its session leader."""

    url: str
    pid: int


class ServiceError(RuntimeError):
    """A benchmark service did not start; the message names its log file."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment that points boto3 at the moto server with fake credentials."""
    return {"AWS_ENDPOINT_URL": endpoint, **AWS_ENV}


def clean_env() -> dict[str, str]:
    """The current environment without anything that could point at real AWS, Prefect or settings."""
    drop = ("AWS_", "PREFECT_", "CANDLEFLOW_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@contextmanager
def moto_server(workdir: Path) -> Iterator[Service]:
    """A moto server subprocess, stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "infra.emulator", "--host", "127.0.0.1", "--port", str(port)]
    with _service("moto", command, clean_env(), workdir) as proc:
        _wait_until(
            lambda: _get(f"{url}/moto-api/data.json") is not None,
            proc,
            "moto",
            workdir,
            MOTO_START_TIMEOUT_S,
        )
        yield Service(url, proc.pid)


@contextmanager
def prefect_server(workdir: Path) -> Iterator[tuple[Service, Path]]:
    """A Prefect server subprocess with its own ``PREFECT_HOME`` (yielded with it), stopped on exit."""
    home = workdir / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **clean_env(),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ui",
        "--analytics-off",
    ]
    with _service("prefect", command, env, workdir) as proc:
        _wait_until(
            lambda: _get(f"{api}/health") is True, proc, "prefect", workdir, PREFECT_START_TIMEOUT_S
        )
        yield Service(api, proc.pid), home


@contextmanager
def _service(
    name: str, command: list[str], env: dict[str, str], workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Terminate a process we started (SIGTERM, then SIGKILL after ``grace_s``) and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _get(url: str) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            value: object = json.loads(response.read() or b"null")
            return value
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    name: str,
    workdir: Path,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with {proc.returncode}; see {workdir / name}.log")
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} not up after {timeout_s:.0f} s; see {workdir / name}.log")
        time.sleep(0.2)


def services_env(moto_url: str, prefect_url: str, prefect_home: Path) -> dict[str, str]:
    """The environment of a worker process talking to these private moto and Prefect servers."""
    return {
        **clean_env(),
        **aws_env(moto_url),
        "PREFECT_API_URL": prefect_url,
        "PREFECT_HOME": str(prefect_home),
        "GX_ANALYTICS_ENABLED": "false",
    }
