"""The ingest's heartbeat after each batch: its own progress, each symbol's newest trade, and what
the producers said about themselves in the batch's message attributes (``GET /health``, monitor)."""

from __future__ import annotations

import logging

import polars as pl

from tasks.aws import status_records
from tasks.aws.sqs import ReceivedMessage
from tasks.context import Store
from tasks.core.heartbeat import IngestBeat, producer_beats, sent_of

log = logging.getLogger(__name__)


def beat(
    ctx: Store, messages: list[ReceivedMessage], trades: pl.DataFrame, seconds: float, now_ms: int
) -> None:
    """Record the beats; a failure is logged, never raised (the batch itself is done)."""
    sent = [s for m in messages if (s := sent_of(m.attributes, m.sent_timestamp_ms)) is not None]
    ingest = IngestBeat(
        now_ms,
        len(messages),
        trades.height,
        seconds,
        max(0, now_ms - int(seconds * 1000) - min(m.sent_timestamp_ms for m in messages)),
    )
    newest = trades.group_by("symbol").agg(pl.col("trade_time").max()) if trades.height else None
    last = {} if newest is None else dict(zip(newest["symbol"], newest["trade_time"], strict=True))
    try:
        status_records.record(
            ctx.clients.dynamodb, ctx.spec.table.name, ingest, last, producer_beats(sent)
        )
    except Exception as exc:  # the heartbeat must never fail a batch that is already stored
        log.warning("could not record the ingest heartbeat (%s); /health may look stale", exc)
