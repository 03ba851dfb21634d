"""ingest-spreads: drain the spread samples queue into the lake and the 1m, 1h and 1d spread candles.

Per batch: receive + parse samples -> raw samples to the lake (Parquet), bad lines to quarantine,
undecodable messages to the DLQ -> merge into the 1m items -> recompute their hours from the pooled
raw samples and mark their days -> delete the messages. Once per run: recompute the marked days. Every
write is idempotent and a mark outlives a crash, so a crash means a harmless redelivery.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.context import store_context
from tasks.ingest import monotonic, now_ms
from tasks.settings import Settings
from tasks.spreads import (
    SpreadReport,
    delete_samples,
    keep_samples,
    receive_samples,
    roll_up_days,
    roll_up_hours,
    upsert_minutes,
)

BATCH_MESSAGES = 50


@flow(name="ingest-spreads")
def ingest_spreads(max_seconds: float | None = None, until_empty: bool = True) -> SpreadReport:
    """Drain until the queue is empty (``until_empty``) or ``max_seconds`` have passed."""
    logger = get_run_logger()
    settings = Settings()
    ctx = store_context(settings)
    report = SpreadReport()
    deadline = None if max_seconds is None else monotonic() + max_seconds
    while deadline is None or monotonic() < deadline:
        batch = receive_samples(ctx, BATCH_MESSAGES, settings.receive_wait_s)
        if not batch.messages:
            if until_empty:
                break
            continue
        keep_samples(ctx, batch, now_ms())
        minutes = upsert_minutes(ctx, batch)
        written = roll_up_hours(ctx, minutes)
        delete_samples(ctx, batch)
        report += SpreadReport(len(batch.messages), len(batch.samples), len(batch.rejects), written)
    # Days marked by this run (or by a run that crashed before getting here).
    report += SpreadReport(written=roll_up_days(ctx))
    logger.info("spreads: %s", report.summary())
    create_markdown_artifact(
        key="spreads-report",
        markdown=f"**ingest-spreads**: {report.summary()}",
        description="spreads",
    )
    return report
