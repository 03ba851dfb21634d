"""The data-quality boundary: great-expectations validates decoded trade rows.

great-expectations takes ~10 s to import, so it is imported once per process, on first use, and its
context is kept for the life of the process; two of its heavy imports are deferred until something
uses them (``DEFERRED_MODULES``). It gets pandas here and nowhere else.

That context is not safe to use from two threads at once: two flow runs validating concurrently in
one process (threads) made GX index one batch's rows with another's mask. Validations are
serialised by a lock (each takes ~0.1 s per 100k rows; deployed flow runs are processes anyway).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import polars as pl

from tasks.core.expectations import COLUMNS, ExpectationSpec
from tasks.core.trades import Reject, trade_time_ms
from tasks.lazy_imports import defer

# Imported by great-expectations for expectations the trade suite does not use (see lazy_imports).
DEFERRED_MODULES = ("scipy.stats", "altair")


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    """What the flow branches on: the rows that passed, the rejects with reasons, and counts."""

    valid: pl.DataFrame
    rejects: list[Reject]
    checked: int
    failed_expectations: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.rejects


_GX_LOCK = threading.Lock()


@cache
def _batch_definition() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in DEFERRED_MODULES:
        defer(name)
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch smaller than HASH_THRESHOLD bytes by hashing all of its
    # rows, twice per validation (get_batch and validate each load the batch); that costs more than
    # the whole suite. The fingerprint only labels batch metadata that nothing here reads.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
    asset = context.data_sources.add_pandas(name="candleflow").add_dataframe_asset(name="trades")
    return asset.add_batch_definition_whole_dataframe("micro-batch")


@cache
def _expectation_module() -> Any:
    import great_expectations.expectations as gxe

    return gxe


def warm_up() -> None:
    """Import great-expectations and build its context now rather than inside the first batch."""
    _batch_definition()
    _expectation_module()


def validate_trades(rows: pl.DataFrame, suite: list[ExpectationSpec]) -> ValidationOutcome:
    """Run the suite over decoded rows; a row failing any expectation is rejected with every reason."""
    if rows.height == 0:
        return ValidationOutcome(rows, [], 0)
    import great_expectations as gx

    gxe = _expectation_module()
    frame = rows.select(
        *[pl.col(wire).alias(name) for wire, name in COLUMNS.items()],
        trade_time_ms().alias("trade_time_ms"),
    ).to_pandas()
    expectations = [
        getattr(gxe, spec.kind)(**spec.kwargs, meta={"reason": spec.reason}) for spec in suite
    ]
    with _GX_LOCK:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        # Most batches are clean: a pass/fail-only run costs ~60% of one listing the failing rows,
        # which runs only when something failed.
        for result_format in ("BOOLEAN_ONLY", "COMPLETE"):
            result = batch.validate(
                gx.ExpectationSuite(name="trades", expectations=expectations),
                result_format={"result_format": result_format},
            )
            if result.success:
                return ValidationOutcome(rows, [], rows.height, {})
    reasons: dict[int, list[str]] = {}
    failed: dict[str, int] = {}
    for outcome in result.results:  # not in suite order: the reason travels in meta
        if outcome.success:
            continue
        config = outcome.expectation_config
        indices = outcome.result.get("unexpected_index_list")
        if config is None or indices is None:  # it failed to run at all, e.g. a missing column
            raise RuntimeError(f"an expectation could not run: {outcome}")
        reason = str((config.meta or {})["reason"])
        failed[reason] = failed.get(reason, 0) + len(indices)
        for i in indices:
            reasons.setdefault(int(i), []).append(reason)
    if not reasons:
        return ValidationOutcome(rows, [], rows.height, failed)
    bad = pl.Series(sorted(reasons), dtype=pl.UInt32)
    mask = pl.Series([False] * rows.height).scatter(bad, True)
    rejects = [
        Reject(message_id, raw, "; ".join(reasons[i]))
        for i, (message_id, raw) in zip(
            bad.to_list(),
            rows.filter(mask).select("message_id", "raw").iter_rows(),
            strict=True,
        )
    ]
    return ValidationOutcome(rows.filter(~mask), rejects, rows.height, failed)
