"""What moto alone takes for a run's load: the floor under the pipeline's time.

Throughput: the same SQS messages (bodies and attributes as the producer sent them) are sent,
received and deleted on a fresh queue, and objects of the same sizes as the run's lake objects are
put into a fresh bucket, one call after another, with nothing else running. Whatever the pipeline
takes beyond these sums is its own work (or a lack of overlap with moto's).

Rebuild: the DynamoDB calls a first build of a day cannot do without, made by the same adapter on
the same 8 threads but with no flow around them, on a fresh table: the 1m candles in transactions of
100 conditional puts, one conditional put per 1h/1d candle, and the day's minutes read once by the
rebuild (none yet), the rollup and the export.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import dynamodb, s3, sqs
from tasks.aws.clients import AwsClients
from tasks.candle_writes import chunked, in_parallel
from tasks.core.models import Candle, Interval
from tasks.settings import Settings


@dataclass
class Floors:
    messages: int
    sqs_send_s: float
    sqs_receive_delete_s: float
    s3_objects: int
    s3_bytes: int
    s3_put_s: float

    @property
    def ingest_s(self) -> float:
        """moto's share of the ingest: receiving and deleting the messages, putting the objects."""
        return self.sqs_receive_delete_s + self.s3_put_s


def measure(
    settings: Settings, messages: Sequence[sqs.OutgoingMessage], object_sizes: Sequence[int]
) -> Floors:
    clients = AwsClients()
    done = provision(clients, resource_spec(settings))
    began = time.perf_counter()
    for batch in sqs.chunk_for_batches(list(messages)):
        errors = sqs.send_batch(clients.sqs, done.queue_url, batch)
        if errors:
            raise RuntimeError(f"moto refused messages: {errors[:3]}")
    sent = time.perf_counter()
    received = 0
    while received < len(messages):
        got = sqs.receive(clients.sqs, done.queue_url, sqs.MAX_BATCH_ENTRIES, 0)
        if not got:
            break
        sqs.delete(clients.sqs, done.queue_url, [m.receipt_handle for m in got])
        received += len(got)
    drained = time.perf_counter()
    for i, size in enumerate(object_sizes):
        s3.put(clients.s3, done.bucket, f"floor/{i}", bytes(size), "application/octet-stream")
    put = time.perf_counter()
    return Floors(
        messages=len(messages),
        sqs_send_s=sent - began,
        sqs_receive_delete_s=drained - sent,
        s3_objects=len(object_sizes),
        s3_bytes=sum(object_sizes),
        s3_put_s=put - drained,
    )


@dataclass
class RebuildFloor:
    puts: int
    transactions: int  # of the puts, those of the 1m candles go in these
    reads: int
    items_read: int
    seconds: float


def rebuild_floor(settings: Settings, candles: dict[Interval, list[Candle]]) -> RebuildFloor:
    """Time the first build's unavoidable DynamoDB calls for ``candles`` on a fresh table."""
    clients = AwsClients()
    spec = resource_spec(settings.model_copy(update={"prefix": f"{settings.prefix}-floor"}))
    provision(clients, spec)
    table, minutes = spec.table.name, candles[Interval.M1]
    symbol = minutes[0].symbol
    start, end = min(c.open_time for c in minutes), max(c.open_time for c in minutes)

    def read_day() -> int:
        return sum(
            1
            for _ in dynamodb.query_candles(
                clients.dynamodb, table, symbol, Interval.M1, start, end
            )
        )

    def put_all(some: list[Candle]) -> None:
        in_parallel(lambda c: dynamodb.put_candle(clients.dynamodb, table, c), some)

    chunks = chunked(minutes, dynamodb.TRANSACTION_ITEMS)

    parents = [c for i in (Interval.H1, Interval.D1) for c in candles[i]]
    began = time.perf_counter()
    items_read = read_day()  # the rebuild's read of what is stored (nothing yet)
    in_parallel(lambda chunk: dynamodb.put_candles(clients.dynamodb, table, chunk), chunks)
    items_read += read_day() + read_day()  # the rollup's and the export's
    put_all(parents)
    seconds = time.perf_counter() - began
    return RebuildFloor(len(minutes) + len(parents), len(chunks), 3, items_read, seconds)
