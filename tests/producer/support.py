"""What producer tests share: the expected trade lines of a capture, draining SQS, running a producer.

The expected lines are cut out of the capture text independently of ``producer.parse`` so the
end-to-end tests compare the producer against a separate oracle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path

from producer.main import Producer, ProducerStats
from producer.sinks import SqsSink
from producer.sources import Source
from tasks.aws.sqs import delete, receive
from tasks.core.contract import CONTENT_ENCODING, decode_body
from tasks.settings import Settings
from tests.conftest import AwsEnv
from tests.fakes.binance_ws import RecordedFrame, capture_frames

_DATA_KEY = ',"data":'


def trade_frames(*paths: Path) -> list[RecordedFrame]:
    """The ``@trade`` frames of captures, in receive order."""
    return [f for f in capture_frames(*paths) if f.stream.endswith("@trade")]


def trade_line(frame: RecordedFrame) -> bytes:
    """The exact text of a frame's ``data`` value (Binance puts it last: ``{"stream":..,"data":{..}}``)."""
    text = frame.text
    return text[text.index(_DATA_KEY) + len(_DATA_KEY) : -1].encode("utf-8")


def trade_key(line: bytes) -> tuple[str, int]:
    data = json.loads(line)
    return str(data["s"]), int(data["t"])


def drain_lines(aws: AwsEnv) -> list[bytes]:
    """Every trade line in the trades queue, message by message in the order SQS returns them."""
    sqs, url = aws.clients.sqs, aws.resources.queue_url
    lines: list[bytes] = []
    empty = 0
    while empty < 2:
        messages = receive(sqs, url, max_messages=10, wait_s=0)
        empty = 0 if messages else empty + 1
        for m in messages:
            body = decode_body(
                m.body, m.attributes.get(CONTENT_ENCODING), aws.settings.max_body_bytes
            )
            lines += body.split(b"\n")
        delete(sqs, url, [m.receipt_handle for m in messages])
    return lines


class StopWhenSeen:
    """Passes a source's frames on and stops it once every wanted trade has gone by."""

    def __init__(self, inner: Source, wanted: set[tuple[str, int]]) -> None:
        self.inner = inner
        self.wanted = wanted
        self.seen: set[tuple[str, int]] = set()
        self.description = f"{inner.description} (until {len(wanted)} trades are seen)"

    async def frames(self) -> AsyncGenerator[str, None]:
        async for text in self.inner.frames():
            envelope = json.loads(text)
            if envelope["stream"].endswith("@trade"):
                self.seen.add((envelope["data"]["s"], envelope["data"]["t"]))
            yield text
            if self.wanted <= self.seen:
                self.inner.stop()

    def stop(self) -> None:
        self.inner.stop()


async def produce_until_seen(
    settings: Settings,
    source: Source,
    aws: AwsEnv,
    wanted: Sequence[bytes],
    timeout_s: float = 30.0,
) -> ProducerStats:
    """Run a producer into the test queue until every wanted trade line has passed through it."""
    tap = StopWhenSeen(source, {trade_key(line) for line in wanted})
    sink = SqsSink(aws.clients.sqs, aws.resources.queue_url, queue_max=settings.send_queue_max)
    return await asyncio.wait_for(Producer(settings, tap, sink).run(), timeout_s)
