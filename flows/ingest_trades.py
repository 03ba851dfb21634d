"""ingest-trades: drain the trades queue in micro-batches into the lake and the 1m candles table.

Per batch: receive -> decode + validate -> quarantine/DLQ the bad -> lake (raw NDJSON + Parquet)
and its Glue partitions -> upsert 1m candles -> empty klines -> mark their hours for rollup ->
candles to the lake -> delete the messages. Messages are deleted only after every durable write,
and every write is idempotent, so a crash anywhere means a harmless redelivery. The next batch is
received while the current one is processed.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture

from tasks.candle_writes import fill_empty_candles, mark_rollups_dirty
from tasks.catalog import export_candles, register_partitions
from tasks.core.candle_lake import candle_spans
from tasks.heartbeats import beat as heartbeat
from tasks.ingest import (
    Batch,
    IngestContext,
    IngestReport,
    batch_report,
    connect,
    decode_and_validate,
    delete_messages,
    keep_rejects,
    monotonic,
    now_ms,
    receive_batch,
    touched_candles,
    upsert_candles,
    write_lake,
)
from tasks.memory import limit_arenas, release_free_memory
from tasks.settings import Settings


@flow(name="ingest-trades")
def ingest_trades(max_seconds: float | None = None, until_empty: bool = True) -> IngestReport:
    """Drain the queue until it is empty (``until_empty``) or ``max_seconds`` have passed."""
    logger = get_run_logger()
    settings = Settings()
    limit_arenas()
    ctx = connect(settings)
    report = IngestReport()
    deadline = None if max_seconds is None else monotonic() + max_seconds
    receiving: PrefectFuture[Batch] | None = receive_batch.submit(ctx, settings.receive_wait_s)
    while receiving is not None:
        batch = receiving.result()
        in_time = deadline is None or monotonic() < deadline
        if not batch.messages:
            if (until_empty and batch.drained) or not in_time:
                break
            receiving = receive_batch.submit(ctx, settings.receive_wait_s)
            continue
        # The next batch is received while this one is written (its messages stay invisible).
        receiving = receive_batch.submit(ctx, settings.receive_wait_s) if in_time else None
        done = ingest_batch(ctx, batch)
        del batch  # its bodies and frames are garbage now: hand their pages back
        release_free_memory()
        report += done
        logger.info("batch %d: %s", report.batches, done.summary())
    logger.info("ingest done: %s", report.summary())
    create_markdown_artifact(
        key="ingest-report",
        markdown=f"**ingest-trades**: {report.summary()}",
        description="ingest",
    )
    return report


def ingest_batch(ctx: IngestContext, batch: Batch) -> IngestReport:
    """One batch, start to finish; its frames are released when this returns."""
    began = monotonic()
    parsed = decode_and_validate(ctx, batch, now_ms())
    keep_rejects(ctx, parsed, min(m.sent_timestamp_ms for m in batch.messages))
    new, stored, keys = write_lake(ctx, parsed.trades)
    register_partitions(ctx, keys)
    written = upsert_candles(ctx, new, stored)
    touched = touched_candles(written, stored)
    empty = fill_empty_candles(ctx, touched)
    mark_rollups_dirty(ctx, written, stored)
    export_candles(ctx, candle_spans([*touched, *empty]))
    delete_messages(ctx, batch)
    seconds = monotonic() - began
    heartbeat(ctx, batch.messages, parsed.trades, seconds, now_ms())
    return batch_report(batch, parsed, new.height, len(keys), len(written), len(empty), seconds)
