"""The SQS sink: encoded bodies go out in SendMessageBatch calls from background sender tasks.

The receive loop only ever calls ``offer``, which never waits: bodies queue up (at most
``send_queue_max``) and sender tasks send them with ``asyncio.to_thread`` so a slow SQS call cannot stall
the websocket. When the queue is full, or a body still fails after its retries, the body is dropped and an
ERROR names its symbols and trade ids: the hole is visible and backfill fills it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

from producer.backoff import Backoff
from producer.batching import Body
from tasks.aws.sqs import MAX_BATCH_ENTRIES, OutgoingMessage, chunk_for_batches, send_batch
from tasks.core.heartbeat import producer_attributes

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

DEFAULT_RETRY = Backoff(base_s=0.2, cap_s=5.0)

SendBatch = Callable[["SQSClient", str, list[OutgoingMessage]], list[str]]
"""``tasks.aws.sqs.send_batch``'s shape: sends one batch, returns the error texts of failed entries."""


@dataclass
class SinkStats:
    """Running totals of what reached SQS and what was given up."""

    messages: int = 0
    bytes: int = 0
    trades: int = 0
    dropped_bodies: int = 0
    dropped_trades: int = 0
    retries: int = 0


class SqsSink:
    """Bounded queue of bodies plus sender tasks; use as ``async with`` so shutdown sends what is left."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        queue_max: int,
        senders: int = 2,
        retry: Backoff = DEFAULT_RETRY,
        max_attempts: int = 6,
        close_timeout_s: float = 60.0,
        send: SendBatch = send_batch,
        rng: random.Random | None = None,
        producer_id: str | None = None,
    ) -> None:
        if senders < 1 or max_attempts < 1:
            raise ValueError("a sink needs at least one sender and one attempt")
        self._client = client
        self._url = queue_url
        self._queue: asyncio.Queue[Body] = asyncio.Queue(maxsize=queue_max)
        self._senders = senders
        self._retry = retry
        self._max_attempts = max_attempts
        self._close_timeout_s = close_timeout_s
        self._send = send
        self._rng = rng or random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._producer_id = producer_id or f"{socket.gethostname()}-{os.getpid()}"
        self._seq = 0
        self.stats = SinkStats()

    @property
    def depth(self) -> int:
        """Bodies not yet acknowledged by SQS (queued or being sent)."""
        return self._queue.qsize() + self._in_flight

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"sqs-sender-{i}")
            for i in range(self._senders)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def offer(self, body: Body) -> bool:
        """Queue a body for sending without waiting; on a full queue drop it, say so, return False."""
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            self._drop(
                body,
                f"the SQS send queue is full ({self._queue.maxsize} bodies; "
                "setting CANDLEFLOW_SEND_QUEUE_MAX)",
            )
            return False
        return True

    async def close(self) -> None:
        """Send everything queued (within ``close_timeout_s``), then stop the sender tasks."""
        if not self._tasks:
            return
        try:
            await asyncio.wait_for(self._queue.join(), self._close_timeout_s)
        except TimeoutError:
            log.error(
                "SQS sink could not send %d bodies within %.0fs of shutdown",
                self.depth,
                self._close_timeout_s,
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        while not self._queue.empty():
            self._drop(self._queue.get_nowait(), "the producer shut down before it was sent")

    async def _sender(self) -> None:
        while True:
            bodies = [await self._queue.get()]
            while len(bodies) < MAX_BATCH_ENTRIES and not self._queue.empty():
                bodies.append(self._queue.get_nowait())
            self._in_flight += len(bodies)
            try:
                await self._deliver(bodies)
            except asyncio.CancelledError:
                for body in bodies:
                    self._drop(
                        body,
                        "the producer shut down while it was being sent (it may have reached SQS)",
                    )
                raise
            finally:
                self._in_flight -= len(bodies)
                for _ in bodies:
                    self._queue.task_done()

    async def _deliver(self, bodies: list[Body]) -> None:
        pending, reason = bodies, ""
        for attempt in range(self._max_attempts):
            if attempt:
                delay = self._retry.delay(attempt - 1, self._rng)
                self.stats.retries += len(pending)
                log.warning(
                    "retrying %d SQS messages in %.2fs (attempt %d of %d)",
                    len(pending),
                    delay,
                    attempt + 1,
                    self._max_attempts,
                )
                await asyncio.sleep(delay)
            failed = await self._send_once(pending)
            if not failed:
                return
            pending = [body for body, _ in failed]
            reason = failed[0][1]
        for body in pending:
            self._drop(body, f"SQS refused it {self._max_attempts} times, last: {reason}")

    async def _send_once(self, bodies: list[Body]) -> list[tuple[Body, str]]:
        """Send bodies in as few batch calls as the limits allow; returns the failed ones and why."""
        failed: list[tuple[Body, str]] = []
        offset = 0
        for group in chunk_for_batches([self._message(b) for b in bodies]):
            group_bodies, offset = bodies[offset : offset + len(group)], offset + len(group)
            try:
                errors = await asyncio.to_thread(self._send, self._client, self._url, group)
            except Exception as exc:
                failed += [(b, f"{type(exc).__name__}: {exc}") for b in group_bodies]
                continue
            rejected = _failed_indexes(errors, len(group))
            failed += [(group_bodies[i], reason) for i, reason in rejected.items()]
            for i, body in enumerate(group_bodies):
                if i not in rejected:
                    self.stats.messages += 1
                    self.stats.bytes += body.size
                    self.stats.trades += body.trades
        return failed

    def _message(self, body: Body) -> OutgoingMessage:
        """The body with the producer's heartbeat attributes (``tasks.core.heartbeat``)."""
        self._seq += body.trades
        beat = producer_attributes(self._producer_id, self._seq, body.last_event_time_ms)
        return OutgoingMessage(body.encoded.body, {**body.encoded.attributes, **beat})

    def _drop(self, body: Body, reason: str) -> None:
        self.stats.dropped_bodies += 1
        self.stats.dropped_trades += body.trades
        log.error(
            "dropped a message of %s because %s; backfill must fill this gap",
            body.describe(),
            reason,
        )


def _failed_indexes(errors: list[str], entries: int) -> dict[int, str]:
    """Map ``send_batch``'s ``'<index>: <code> <message>'`` texts to entry indexes.

    An error text that names no entry marks the whole batch failed: resending duplicates is harmless
    (the pipeline dedupes by trade id), losing trades is not.
    """
    failed: dict[int, str] = {}
    for text in errors:
        head, _, reason = text.partition(":")
        if not head.strip().isdigit() or int(head) >= entries:
            return {i: text for i in range(entries)}
        failed[int(head)] = reason.strip()
    return failed
