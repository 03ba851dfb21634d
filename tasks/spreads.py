"""Prefect tasks of the spreads flow: samples from SQS -> lake -> 1m, 1h and 1d spread candles.

Each interval's statistics are computed from its pooled raw samples (``tasks.core.spreads``): a 1m
item keeps its samples, a 1h item pools its 60 minutes', a 1d item its 24 hours' (stored on the 1h
items). Samples merge by time and writes are conditional on ``spread_version``, so redeliveries,
concurrent runs and retries leave the same candles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aws import s3, spread_records, sqs
from tasks.candle_writes import in_parallel
from tasks.catalog import register_partitions
from tasks.context import Store
from tasks.core.contract import CONTENT_ENCODING, decode_body
from tasks.core.lake import quarantine_object
from tasks.core.models import Interval
from tasks.core.spread_contract import parse_sample_line
from tasks.core.spread_items import merge_samples
from tasks.core.spread_lake import sample_objects
from tasks.core.spreads import SpreadSample, interval_summary
from tasks.core.trades import Reject
from tasks.errors import ConflictError, DecodeError

MAX_CONFLICT_RETRIES = 20
Key = tuple[str, int]  # (market, open time)


@dataclass(frozen=True)
class SampleBatch:
    messages: list[sqs.ReceivedMessage]
    samples: list[tuple[SpreadSample, str, int]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    undecodable: list[tuple[sqs.ReceivedMessage, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SpreadReport:
    messages: int = 0
    samples: int = 0
    rejects: int = 0
    written: dict[str, int] = field(default_factory=dict)  # interval -> candles written

    def __add__(self, other: SpreadReport) -> SpreadReport:
        written = dict(self.written)
        for k, v in other.written.items():
            written[k] = written.get(k, 0) + v
        return SpreadReport(
            self.messages + other.messages,
            self.samples + other.samples,
            self.rejects + other.rejects,
            written,
        )

    def summary(self) -> str:
        per = ", ".join(f"{n} {i}" for i, n in sorted(self.written.items()))
        return (
            f"{self.messages} messages, {self.samples} samples, {self.rejects} rejected; "
            f"spread candles written: {per or 'none'}"
        )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5])
def receive_samples(ctx: Store, max_messages: int, wait_s: int) -> SampleBatch:
    """Up to ``max_messages`` messages, decoded and parsed line by line (bad lines kept aside)."""
    url = sqs.queue_url(ctx.clients.sqs, ctx.spec.samples_queue.name)
    messages: list[sqs.ReceivedMessage] = []
    while len(messages) < max_messages:
        got = sqs.receive(
            ctx.clients.sqs, url, max_messages - len(messages), 0 if messages else wait_s
        )
        if not got:
            break
        messages += got
    batch = SampleBatch(messages)
    for m in messages:
        try:
            body = decode_body(
                m.body, m.attributes.get(CONTENT_ENCODING), ctx.settings.max_body_bytes
            )
        except DecodeError as exc:
            batch.undecodable.append((m, str(exc)))
            continue
        for line in filter(None, body.split(b"\n")):
            try:
                batch.samples.append(parse_sample_line(line))
            except ValueError as exc:
                batch.rejects.append(
                    Reject(m.message_id, line.decode("utf-8", "replace"), str(exc))
                )
    return batch


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def keep_samples(ctx: Store, batch: SampleBatch, received_ms: int) -> int:
    """Raw samples to the lake (Parquet), bad lines to quarantine, undecodable messages to the DLQ."""
    bucket = ctx.spec.bucket
    objects = sample_objects(batch.samples, bucket.spreads_prefix)
    bad = quarantine_object(batch.rejects, received_ms, f"quarantine/{bucket.spreads_prefix}")
    for obj in [*objects, *([bad] if bad else [])]:
        s3.put(ctx.clients.s3, bucket.name, obj.key, obj.body, obj.content_type)
    register_partitions.fn(ctx, [o.key for o in objects])  # the samples' Glue partitions
    if batch.rejects:
        get_run_logger().warning(
            "%d sample line(s) rejected to quarantine: %s",
            len(batch.rejects),
            batch.rejects[0].reason,
        )
    if batch.undecodable:
        dlq = sqs.queue_url(ctx.clients.sqs, ctx.spec.samples_queue.dlq_name)
        for message, reason in batch.undecodable:
            sqs.dead_letter(ctx.clients.sqs, dlq, message, reason)
            get_run_logger().error(
                "sample message %s moved to the DLQ: %s", message.message_id, reason
            )
    return len(objects)


def _upsert(
    ctx: Store,
    market: str,
    interval: Interval,
    open_time: int,
    fresh: list[SpreadSample],
    keep_samples: bool,
    pooled: bool,
) -> None:
    """Write one interval's spread columns from its samples (merged with the stored ones unless
    ``pooled``: then ``fresh`` already is every sample of the interval)."""
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    for _ in range(MAX_CONFLICT_RETRIES):
        stored = spread_records.read_samples(client, table, market, interval, [open_time])
        have, version = stored.get(open_time, ([], 0))
        samples = fresh if pooled else merge_samples(have, fresh)
        if pooled and samples == have and version:
            return
        candle = interval_summary(samples, interval, open_time)
        try:
            spread_records.write(client, table, candle, samples if keep_samples else None, version)
            return
        except ConflictError:
            continue
    raise ConflictError(f"gave up on spreads of {market} {interval.value} {open_time}")


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def upsert_minutes(ctx: Store, batch: SampleBatch) -> set[Key]:
    """Merge the batch's samples into their 1m items; returns the (market, minute)s touched."""
    groups: dict[Key, list[SpreadSample]] = {}
    for sample, _, _ in batch.samples:
        groups.setdefault((sample.market, Interval.M1.floor(sample.ts_ms)), []).append(sample)
    in_parallel(
        lambda key: _upsert(ctx, key[0], Interval.M1, key[1], groups[key], True, False),
        sorted(groups),
    )
    return set(groups)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def roll_up_hours(ctx: Store, minutes: set[Key]) -> dict[str, int]:
    """Recompute the touched 1h items from their minutes' pooled samples; mark their days dirty.

    Hours are cheap (60 small items); a day pools 24 hours of samples (~1.4 MB at one sample per
    5 s), so days are recomputed once per run from the marks (``roll_up_days``), not per batch.
    """
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    hours = sorted({(m, Interval.H1.floor(t)) for m, t in minutes})

    def hour(key: Key) -> None:
        market, start = key
        pooled = spread_records.query_samples(
            client, table, market, Interval.M1, start, start + Interval.H1.ms - 1
        )
        _upsert(ctx, market, Interval.H1, start, merge_samples([], pooled), True, True)

    in_parallel(hour, hours)
    spread_records.mark_days(client, table, {(m, Interval.D1.floor(t)) for m, t in hours})
    return {"1m": len(minutes), "1h": len(hours)}


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def roll_up_days(ctx: Store) -> dict[str, int]:
    """Recompute every marked day from its hours' pooled samples; clear the marks nobody renewed."""
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    marks = spread_records.dirty_days(client, table)

    def day(mark: tuple[str, int, str]) -> None:
        market, start, token = mark
        pooled = spread_records.query_samples(
            client, table, market, Interval.H1, start, start + Interval.D1.ms - 1
        )
        _upsert(ctx, market, Interval.D1, start, merge_samples([], pooled), False, True)
        spread_records.clear_day(client, table, market, start, token)

    in_parallel(day, marks)
    return {"1d": len(marks)}


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5])
def delete_samples(ctx: Store, batch: SampleBatch) -> None:
    url = sqs.queue_url(ctx.clients.sqs, ctx.spec.samples_queue.name)
    failed = sqs.delete(ctx.clients.sqs, url, [m.receipt_handle for m in batch.messages])
    if failed:
        get_run_logger().warning(
            "%d sample message(s) not deleted (redelivered later)", len(failed)
        )
