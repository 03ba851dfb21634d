"""Deferred modules load on first use, once, and the validation worker never loads the two it defers."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.lazy_imports import DeferredModule, defer, is_loaded


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("cf_deferred_")]:
        del sys.modules[name]


def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


def test_a_deferred_module_runs_on_the_first_attribute_read_and_only_once(
    module_dir: Path,
) -> None:
    _write(
        module_dir,
        "cf_deferred_counter",
        """
        import builtins
        builtins.cf_deferred_runs = getattr(builtins, "cf_deferred_runs", 0) + 1
        VALUE = 42
        """,
    )
    import builtins

    assert defer("cf_deferred_counter") is True
    import cf_deferred_counter  # type: ignore[import-not-found]  # the import statement: not yet

    assert isinstance(cf_deferred_counter, DeferredModule)
    assert getattr(builtins, "cf_deferred_runs", 0) == 0 and not is_loaded("cf_deferred_counter")
    assert cf_deferred_counter.VALUE == 42
    assert cf_deferred_counter.VALUE == 42
    assert builtins.cf_deferred_runs == 1  # type: ignore[attr-defined]
    assert is_loaded("cf_deferred_counter")
    assert importlib.import_module("cf_deferred_counter").VALUE == 42
    assert defer("cf_deferred_counter") is False  # imported already
    del builtins.cf_deferred_runs  # type: ignore[attr-defined]


def test_missing_modules_are_not_deferred_and_a_failing_import_fails_each_time(
    module_dir: Path,
) -> None:
    assert defer("cf_deferred_missing") is False
    _write(module_dir, "cf_deferred_broken", "raise RuntimeError('broken on import')\n")
    assert defer("cf_deferred_broken") is True
    proxy = sys.modules["cf_deferred_broken"]
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken on import"):
            proxy.anything  # noqa: B018
        assert sys.modules["cf_deferred_broken"] is proxy


def test_the_validating_process_validates_without_loading_scipy_stats_or_altair() -> None:
    code = textwrap.dedent(
        """
        import polars as pl
        from tasks import validate
        from tasks.core.expectations import trade_suite
        from tasks.core.trades import decode_lines, lines_frame
        from tasks.lazy_imports import is_loaded
        from tests.builders import Trade

        validate.warm_up()
        good = Trade(trade_id=1).line()
        bad = Trade(trade_id=2, price="-1.5").line()
        rows, _ = decode_lines(lines_frame([("m", 1, (good + "\\n" + bad).encode())]))
        outcome = validate.validate_trades(rows, trade_suite(["BTCUSDT"], 0, 2**62))
        print(outcome.valid.height, [r.reason for r in outcome.rejects])
        print(is_loaded("scipy.stats"), is_loaded("altair"))
        from great_expectations.expectations.core import (
            expect_column_kl_divergence_to_be_less_than as kl,
        )
        print(round(float(kl.stats.entropy([0.5, 0.5], [0.9, 0.1])), 4), kl.alt.Chart.__name__)
        print(is_loaded("scipy.stats"), is_loaded("altair"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    valid, before, used, after = done.stdout.strip().splitlines()[-4:]
    assert valid == "1 [\"field 'p' is not a decimal below 10^11 with at most 8 places\"]"
    assert before == "False False"
    assert used == "0.5108 Chart"  # and when something does use them, they are the real modules
    assert after == "True True"
