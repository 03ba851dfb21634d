"""The embedded emulator routes requests without listing moto's package directory each time."""

from __future__ import annotations

import logging
import os

import pytest
from moto import backends

from infra.emulator import make_request_routing_fast, only_server_errors


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
