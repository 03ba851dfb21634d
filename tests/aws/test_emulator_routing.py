"""The embedded emulator routes requests without listing its package each time, and logs only 5xx."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from moto import backends

from infra.emulator import only_server_errors
from infra.moto_patches import make_request_routing_fast
from tests.conftest import free_port


def test_moto_modules_are_listed_once_and_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = sorted(backends.list_of_moto_modules())
    make_request_routing_fast()
    make_request_routing_fast()  # idempotent: the emulator and the test harness may both call it

    def no_listing(path: str) -> list[str]:
        raise AssertionError(f"listed {path} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert sorted(backends.list_of_moto_modules()) == listed
    assert "dynamodb" in listed and "sqs" in listed and "s3" in listed


def test_the_request_log_keeps_server_errors_and_drops_the_rest() -> None:
    def record(level: int, message: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("werkzeug", level, __file__, 1, message, args, None)

    line = '127.0.0.1 - - [22/Nov/2026 03:19:40] "%s" %s %s\n'
    assert not only_server_errors(record(logging.INFO, line, "POST / HTTP/1.1", "200", "-"))
    assert not only_server_errors(record(logging.INFO, line, "POST / HTTP/1.1", "400", "-"))
    assert only_server_errors(record(logging.INFO, line, "POST / HTTP/1.1", "500", "-"))
    assert only_server_errors(record(logging.ERROR, "Error on request:\n%s", "Traceback ..."))
    assert only_server_errors(record(logging.INFO, " * Running on http://127.0.0.1:5055"))


@pytest.mark.parametrize("every", [False, True])
def test_the_emulator_process_logs_request_lines_only_when_asked(every: bool) -> None:
    port = free_port()
    command = [sys.executable, "-m", "infra.emulator", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, *(["--log-requests"] if every else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        assert "listening at" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/moto-api/data.json"
        assert urllib.request.urlopen(url, timeout=30).status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert ('"GET /moto-api/data.json HTTP/1.1" 200' in out) is every
