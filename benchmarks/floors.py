"""What moto alone takes for a run's load: the floor under the pipeline's time.

The same SQS messages (bodies and attributes as the producer sent them) are sent, received and deleted
on a fresh queue, and objects of the same sizes as the run's lake objects are put into a fresh bucket,
one call after another, with nothing else running. Whatever the pipeline takes beyond these sums is
its own work (or a lack of overlap with moto's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import s3, sqs
from tasks.aws.clients import AwsClients
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
