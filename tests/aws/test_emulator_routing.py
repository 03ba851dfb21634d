"""The embedded emulator routes requests without listing moto's package directory each time."""

from __future__ import annotations

import os

import pytest
from moto import backends

from infra.emulator import make_request_routing_fast


def test_moto_modules_are_listed_once_and_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = sorted(backends.list_of_moto_modules())
    make_request_routing_fast()
    make_request_routing_fast()  # idempotent: the emulator and the test harness may both call it

    def no_listing(path: str) -> list[str]:
        raise AssertionError(f"listed {path} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert sorted(backends.list_of_moto_modules()) == listed
    assert "dynamodb" in listed and "sqs" in listed and "s3" in listed
