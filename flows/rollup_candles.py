"""rollup-candles: recompute 1h and 1d candles from the stored candles one level finer.

The candles written are rewritten into the lake's candle objects at the end.

Per level, finest first: plan (the window's parents plus the dirty ones) -> recompute each parent
from all its stored children and write it if it differs -> clear the dirty markers nobody set again
meanwhile. A 1h run then recomputes the dirty 1d parents, including those it just marked.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.catalog import export_candles
from tasks.context import store_context
from tasks.core.candle_lake import candle_spans
from tasks.core.models import Interval
from tasks.core.rollup import rollup_scopes
from tasks.rollup import (
    RollupReport,
    clear_markers,
    lookback,
    now_ms,
    plan_rollup,
    roll_up,
    rollup_context,
    rollup_span,
)
from tasks.settings import Settings


@flow(name="rollup-candles")
def rollup_candles(
    interval: str = "1h",
    start: str | None = None,
    end: str | None = None,
    symbols: list[str] | None = None,
) -> RollupReport:
    """Roll ``interval`` (1h or 1d) up: the trailing window and dirty parents, or exactly
    ``start``..``end`` (ISO-8601, UTC when no zone is given; ``end`` defaults to now)."""
    logger = get_run_logger()
    settings = Settings()
    level = Interval.parse(interval)
    now = now_ms()
    scopes = rollup_scopes(level, rollup_span(start, end, now), now, lookback(settings, level))
    ctx = rollup_context(settings)
    report = RollupReport()
    for scope in scopes:
        plan = plan_rollup(ctx, scope, symbols or settings.symbols)
        report += roll_up(ctx, plan)
        report += clear_markers(ctx, plan)
    export_candles(store_context(settings), candle_spans(report.written))
    logger.info("rollup %s done: %s", interval, report.summary())
    create_markdown_artifact(
        key=f"rollup-{level.value}-report",
        markdown=report.markdown(f"rollup-candles {level.value}"),
        description=f"rollup {level.value}",
    )
    return report
