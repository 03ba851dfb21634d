"""detect-gaps: find the holes in each symbol's trade ids, close the filled ones, and fill the rest.

Per symbol: scan the settled 1m candles after the watermark and record new gaps -> re-read the
candles of every open gap and close or narrow it. Then, when ``CANDLEFLOW_AUTO_FILL_GAPS`` is on,
one backfill run (a subflow, visible in the UI) per open gap fetches its trades from Binance.
The artifact lists every open gap with its trade ids and time window.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.backfill import backfill
from tasks.context import store_context
from tasks.core.keys import iso_millis
from tasks.gaps import GapReport, now_ms, recheck_gaps, scan_gaps
from tasks.settings import Settings

MAX_FILLS_PER_RUN = 20


@flow(name="detect-gaps")
def detect_gaps(symbols: list[str] | None = None, fill: bool | None = None) -> GapReport:
    """Scan ``symbols`` (default: all); ``fill`` overrides CANDLEFLOW_AUTO_FILL_GAPS."""
    logger = get_run_logger()
    settings = Settings()
    ctx = store_context(settings)
    report = GapReport()
    for symbol in symbols or settings.symbols:
        report += scan_gaps(ctx, symbol, now_ms())
        report += recheck_gaps(ctx, symbol, now_ms())
    logger.info("gaps: %s", report.summary())
    create_markdown_artifact(key="gaps", markdown=report.markdown(), description="open gaps")
    if not (settings.auto_fill_gaps if fill is None else fill) or not report.open:
        return report
    for record in report.open[:MAX_FILLS_PER_RUN]:
        g = record.gap
        state = backfill(
            iso_millis(g.start_ms), iso_millis(g.end_ms), [g.symbol], return_state=True
        )
        if state.is_failed():
            logger.error(
                "backfill of %s ids %d-%d failed (%s); the gap stays open for the next run",
                g.symbol,
                g.first_id,
                g.last_id,
                state.message,
            )
            break  # the same cause (Binance unreachable, rate limited, banned) stops the others
    return report
