from __future__ import annotations

import json

import pytest

from cli.main import main
from tests.conftest import AwsEnv


@pytest.fixture
def env(aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    return aws


def test_gaps_lists_nothing_on_a_fresh_table_and_says_so_in_json(
    env: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gaps", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["gaps"]) == 0
    assert "open gaps (0)" in capsys.readouterr().out


def test_backfill_refuses_a_window_that_ends_before_it_starts(
    env: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["backfill", "--start", "2024-08-09T00:00:00Z", "--end", "2024-08-08T00:00:00Z"])
    assert code == 1
    assert "backfill window ends (2024-08-08T00:00:00Z) before it starts" in capsys.readouterr().err


def test_backfill_refuses_a_time_that_is_not_iso_8601(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["backfill", "--start", "yesterday"])
    assert exit_.value.code == 2
    assert "'yesterday' is not ISO-8601" in capsys.readouterr().err
