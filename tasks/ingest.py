"""Prefect tasks of the ingest flow: each carries its retries and logging; logic lives in tasks/core."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.spec import ResourceSpec, resource_spec
from tasks.aws import dynamodb, s3, sqs
from tasks.aws.clients import AwsClients
from tasks.candle_writes import chunked, in_parallel
from tasks.core.candles import (
    CandleKey,
    aggregate,
    candle_keys,
    exclude_known,
    in_candle,
    merge,
)
from tasks.core.contract import CONTENT_ENCODING, decode_body
from tasks.core.expectations import trade_suite
from tasks.core.lake import quarantine_object
from tasks.core.models import Candle
from tasks.core.trades import (
    Reject,
    decode_lines,
    distinct_trades,
    lines_frame,
    typed_trades,
)
from tasks.errors import ConflictError, DecodeError
from tasks.lake_writes import write_once
from tasks.settings import Settings
from tasks.validate import validate_trades, warm_up

MAX_CONFLICT_RETRIES = 20


@dataclass(frozen=True)
class IngestContext:
    """What every task of one flow run shares: settings, resource names, clients, queue URLs."""

    settings: Settings
    spec: ResourceSpec
    clients: AwsClients
    queue_url: str
    dlq_url: str


@dataclass(frozen=True)
class Batch:
    messages: list[sqs.ReceivedMessage]
    drained: bool = False  # nothing received and the queue reported no visible messages

    @property
    def receipt_handles(self) -> list[str]:
        return [m.receipt_handle for m in self.messages]


@dataclass(frozen=True)
class Parsed:
    """A decoded, validated micro-batch: distinct accepted trades, rejected lines, dead letters."""

    trades: pl.DataFrame
    lines: int
    duplicates: int
    rejects: list[Reject]
    undecodable: list[tuple[sqs.ReceivedMessage, str]]


@dataclass(frozen=True)
class IngestReport:
    batches: int = 0
    messages: int = 0
    trades: int = 0
    new_trades: int = 0
    duplicates: int = 0
    rejects: int = 0
    dead_lettered: int = 0
    candles_written: int = 0
    empty_candles_written: int = 0
    lake_objects: int = 0
    seconds: float = 0.0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: IngestReport) -> IngestReport:
        reasons = dict(self.reject_reasons)
        for k, v in other.reject_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
        summed = {
            f: getattr(self, f) + getattr(other, f)
            for f in self.__dataclass_fields__
            if f != "reject_reasons"
        }
        return IngestReport(**summed, reject_reasons=reasons)

    def summary(self) -> str:
        rate = self.trades / self.seconds if self.seconds else 0.0
        return (
            f"{self.messages} messages, {self.trades} trades ({self.new_trades} new, "
            f"{self.duplicates} duplicates), {self.rejects} rejected to quarantine, "
            f"{self.dead_lettered} dead-lettered, {self.candles_written} candles written "
            f"(+{self.empty_candles_written} empty), {self.lake_objects} lake objects, "
            f"{self.batches} batches in {self.seconds:.1f} s ({rate:,.0f} trades/s)"
        )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def connect(settings: Settings) -> IngestContext:
    """Resolve the queues (fails with a hint to run `candleflow provision` when they are missing)."""
    spec = resource_spec(settings)
    clients = AwsClients()
    warm_up()
    return IngestContext(
        settings,
        spec,
        clients,
        sqs.queue_url(clients.sqs, spec.queue.name),
        sqs.queue_url(clients.sqs, spec.queue.dlq_name),
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5])
def receive_batch(ctx: IngestContext, wait_s: int) -> Batch:
    """Receive up to ``batch_max_messages`` messages holding up to ``batch_max_trades`` trades.

    Long-polls only while the queue is empty. The first call takes one message (a batch holds at
    least one, however large); each further call takes no more messages than fit in the trade
    limit if they are as large as the largest so far.
    """
    messages: list[sqs.ReceivedMessage] = []
    limit, max_trades = ctx.settings.batch_max_messages, ctx.settings.batch_max_trades
    trades = largest = 0
    while len(messages) < limit:
        room = 1
        if messages:
            room = min(limit - len(messages), sqs.MAX_BATCH_ENTRIES)
            room = min(room, (max_trades - trades) // max(largest, 1))
            if room < 1:
                break
        got = sqs.receive(ctx.clients.sqs, ctx.queue_url, room, 0 if messages else wait_s)
        if not got:
            break
        messages += got
        counts = [_line_count(m, ctx.settings.max_body_bytes) for m in got]
        trades, largest = trades + sum(counts), max(largest, *counts)
    if not messages:
        return Batch([], drained=sqs.depth(ctx.clients.sqs, ctx.queue_url)[0] == 0)
    return Batch(messages)


def _line_count(message: sqs.ReceivedMessage, max_bytes: int) -> int:
    """Lines in a message's body; 0 when it breaks the contract (it goes to the DLQ)."""
    try:
        body = decode_body(message.body, message.attributes.get(CONTENT_ENCODING), max_bytes)
    except DecodeError:
        return 0
    return body.count(b"\n") + 1


@task(cache_policy=NO_CACHE)
def decode_and_validate(ctx: IngestContext, batch: Batch, now_ms: int) -> Parsed:
    """Decode bodies (contract), parse lines, validate with great-expectations, dedupe by trade id."""
    undecodable: list[tuple[sqs.ReceivedMessage, str]] = []

    def bodies() -> Iterator[tuple[str, int, bytes]]:
        for m in batch.messages:
            try:
                body = decode_body(
                    m.body, m.attributes.get(CONTENT_ENCODING), ctx.settings.max_body_bytes
                )
            except DecodeError as exc:
                undecodable.append((m, str(exc)))
                continue
            yield m.message_id, m.sent_timestamp_ms, body

    # Each body is decoded as its lines are split, and each intermediate frame is dropped as soon
    # as the next one exists: together they would need several times the memory of the batch.
    lines = lines_frame(bodies())
    rows, bad_json = decode_lines(lines)
    line_count = lines.height
    del lines
    suite = trade_suite(
        ctx.settings.symbols,
        int(ctx.settings.earliest_trade_time.timestamp() * 1000),
        now_ms + ctx.settings.max_future_skew_s * 1000,
    )
    outcome = validate_trades(rows, suite)
    del rows
    typed = typed_trades(outcome.valid)
    trades = distinct_trades(typed)
    return Parsed(
        trades,
        line_count,
        typed.height - trades.height,
        bad_json + outcome.rejects,
        undecodable,
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def keep_rejects(ctx: IngestContext, parsed: Parsed, received_ms: int) -> None:
    """Rejected lines to the S3 quarantine; undecodable messages to the DLQ, each with its reason."""
    logger = get_run_logger()
    obj = quarantine_object(parsed.rejects, received_ms, ctx.spec.bucket.quarantine_prefix)
    if obj is not None:
        s3.put(ctx.clients.s3, ctx.spec.bucket.name, obj.key, obj.body, obj.content_type)
        reasons = sorted({r.reason for r in parsed.rejects})
        logger.warning(
            "%d rejected line(s) kept in s3://%s/%s: %s",
            len(parsed.rejects),
            ctx.spec.bucket.name,
            obj.key,
            " | ".join(reasons[:5]),
        )
    for message, reason in parsed.undecodable:
        sqs.dead_letter(ctx.clients.sqs, ctx.dlq_url, message, reason)
        logger.error("message %s moved to the DLQ: %s", message.message_id, reason)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def write_lake(
    ctx: IngestContext, trades: pl.DataFrame
) -> tuple[pl.DataFrame, dict[CandleKey, Candle], list[str]]:
    """Write trades no stored candle holds yet to the lake; returns them, the stored candles, keys."""
    stored = dynamodb.get_candles(ctx.clients.dynamodb, ctx.spec.table.name, candle_keys(trades))
    new = exclude_known(trades, stored.values())
    return new, stored, write_once(ctx.clients, ctx.spec.bucket, new)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def upsert_candles(
    ctx: IngestContext, new: pl.DataFrame, stored: dict[CandleKey, Candle]
) -> list[Candle]:
    """Merge new trades into the stored 1m candles with conditional writes; re-read on conflicts."""
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    fresh = exclude_known(new, stored.values())
    parts = {(c.symbol, c.interval, c.open_time): c for c in aggregate(fresh)}

    def upsert(key: CandleKey) -> Candle | None:
        existing, part = stored.get(key), parts[key]
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return dynamodb.put_candle(client, table, merge(existing, part))
            except ConflictError:
                existing = dynamodb.get_candles(client, table, [key]).get(key)
                again = aggregate(
                    exclude_known(in_candle(fresh, key), [existing] if existing else [])
                )
                if not again:
                    # Every one of these trades is counted already: by this very write, whose
                    # response was lost, by an earlier attempt of this task, or by another worker.
                    # The stored candle is what this batch wrote, as far as the steps after care.
                    return existing
                part = again[0]
        raise ConflictError(f"gave up on {key} after {MAX_CONFLICT_RETRIES} conflicting writes")

    return [c for c in in_parallel(upsert, list(parts)) if c is not None]


def touched_candles(written: list[Candle], stored: dict[CandleKey, Candle]) -> list[Candle]:
    """The batch's minutes as stored now: ``written``, and the stored ones it held nothing new for.

    After a crash between the candle writes and the steps that follow (empty fill, exports), the
    redelivered batch writes nothing new; only the stored candles still name those minutes.
    """
    now = {(c.symbol, c.interval, c.open_time): c for c in stored.values()}
    now.update({(c.symbol, c.interval, c.open_time): c for c in written})
    return list(now.values())


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5])
def delete_messages(ctx: IngestContext, batch: Batch) -> None:
    """Delete the batch's messages, only after every durable write succeeded."""
    chunks = chunked(batch.receipt_handles, sqs.MAX_BATCH_ENTRIES)
    failed = [
        f
        for errors in in_parallel(lambda c: sqs.delete(ctx.clients.sqs, ctx.queue_url, c), chunks)
        for f in errors
    ]
    if failed:
        get_run_logger().warning(
            "%d message(s) not deleted (they will be redelivered): %s",
            len(failed),
            failed[:3],
        )


def batch_report(
    batch: Batch,
    parsed: Parsed,
    new: int,
    objects: int,
    written: int,
    empty: int,
    seconds: float,
) -> IngestReport:
    reasons: dict[str, int] = {}
    for r in parsed.rejects:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    return IngestReport(
        batches=1,
        messages=len(batch.messages),
        trades=parsed.trades.height,
        new_trades=new,
        duplicates=parsed.duplicates,
        rejects=len(parsed.rejects),
        dead_lettered=len(parsed.undecodable),
        candles_written=written,
        empty_candles_written=empty,
        lake_objects=objects,
        seconds=seconds,
        reject_reasons=reasons,
    )


def monotonic() -> float:
    return time.monotonic()


def now_ms() -> int:
    return time.time_ns() // 1_000_000
