"""The SQS sink against the moto server: batches, retries, loud drops, and a full flush on close.

Failures are injected by wrapping the real ``send_batch`` (a fake transport, not a mocked client).
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from producer.backoff import Backoff
from producer.batching import Body, Packer
from producer.sinks import SendBatch, SqsSink
from tasks.aws.sqs import OutgoingMessage, send_batch
from tests.conftest import AwsEnv
from tests.producer.builders import make_trade
from tests.producer.support import drain_lines

FAST_RETRY = Backoff(base_s=0.01, cap_s=0.02)


def make_body(first_id: int, count: int = 3, symbol: str = "BTCUSDT") -> Body:
    packer = Packer(64 * 1024, 4096, 1.0, max_raw_bytes=64 * 1024)
    for trade_id in range(first_id, first_id + count):
        packer.add(make_trade(symbol=symbol, trade_id=trade_id), now=0.0)
    (body,) = packer.flush_all()
    return body


def make_sink(aws: AwsEnv, *, queue_max: int = 100, send: SendBatch = send_batch) -> SqsSink:
    return SqsSink(
        aws.clients.sqs,
        aws.resources.queue_url,
        queue_max=queue_max,
        retry=FAST_RETRY,
        max_attempts=3,
        send=send,
    )


def ids_in(lines: list[bytes]) -> list[int]:
    return sorted(int(line.split(b'"t":')[1].split(b",")[0]) for line in lines)


def test_close_sends_every_queued_body_in_batches(aws: AwsEnv) -> None:
    calls: list[int] = []

    def counting(client: object, url: str, messages: list[OutgoingMessage]) -> list[str]:
        calls.append(len(messages))
        return send_batch(aws.clients.sqs, url, messages)

    async def scenario() -> None:
        sink = make_sink(aws, send=counting)
        for i in range(25):
            sink.offer(make_body(first_id=i * 3))  # queued before any sender runs
        async with sink:
            pass
        assert (sink.stats.messages, sink.stats.trades, sink.depth) == (25, 75, 0)

    asyncio.run(scenario())
    assert ids_in(drain_lines(aws)) == list(range(75))
    assert max(calls) == 10 and sum(calls) == 25


def test_a_full_queue_drops_the_body_and_logs_symbol_count_and_ids(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        sink = make_sink(aws, queue_max=1)
        assert sink.offer(make_body(first_id=1))
        assert not sink.offer(make_body(first_id=5, count=5, symbol="ETHUSDT"))
        async with sink:
            pass
        assert (sink.stats.dropped_bodies, sink.stats.dropped_trades) == (1, 5)

    with caplog.at_level(logging.ERROR, logger="producer.sinks"):
        asyncio.run(scenario())
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "5 trades: ETHUSDT 5-9" in message and "CANDLEFLOW_SEND_QUEUE_MAX" in message
    assert ids_in(drain_lines(aws)) == [1, 2, 3]


def test_a_failed_call_is_retried_until_it_succeeds(aws: AwsEnv) -> None:
    failures = [ConnectionError("connection reset by peer")]

    def flaky(client: object, url: str, messages: list[OutgoingMessage]) -> list[str]:
        if failures:
            raise failures.pop()
        return send_batch(aws.clients.sqs, url, messages)

    async def scenario() -> None:
        sink = make_sink(aws, send=flaky)
        async with sink:
            sink.offer(make_body(first_id=1))
        assert (sink.stats.messages, sink.stats.retries, sink.stats.dropped_bodies) == (1, 1, 0)

    asyncio.run(scenario())
    assert ids_in(drain_lines(aws)) == [1, 2, 3]


def test_only_the_entries_sqs_refused_are_sent_again(aws: AwsEnv) -> None:
    refused_once: list[bool] = []

    def refuse_first_entry_once(
        client: object, url: str, messages: list[OutgoingMessage]
    ) -> list[str]:
        if not refused_once and len(messages) > 1:
            refused_once.append(True)
            return ["0: InternalError try again", *send_batch(aws.clients.sqs, url, messages[1:])]
        return send_batch(aws.clients.sqs, url, messages)

    async def scenario() -> None:
        sink = make_sink(aws, send=refuse_first_entry_once)
        for first_id in (10, 20, 30):
            sink.offer(make_body(first_id=first_id))
        async with sink:
            pass
        assert (sink.stats.messages, sink.stats.retries) == (3, 1)

    asyncio.run(scenario())
    assert refused_once
    assert ids_in(drain_lines(aws)) == [10, 11, 12, 20, 21, 22, 30, 31, 32]


def test_a_body_that_keeps_failing_is_dropped_loudly(
    aws: AwsEnv, caplog: pytest.LogCaptureFixture
) -> None:
    def always_refused(client: object, url: str, messages: list[OutgoingMessage]) -> list[str]:
        return [f"{i}: ServiceUnavailable down" for i in range(len(messages))]

    async def scenario() -> None:
        sink = make_sink(aws, send=always_refused)
        async with sink:
            sink.offer(make_body(first_id=42, count=2))
        assert (sink.stats.dropped_trades, sink.stats.messages) == (2, 0)

    with caplog.at_level(logging.WARNING, logger="producer.sinks"):
        asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "BTCUSDT 42-43" in errors[0] and "ServiceUnavailable" in errors[0]
    assert drain_lines(aws) == []


def test_offer_never_waits_for_a_slow_sqs(aws: AwsEnv) -> None:
    def slow(client: object, url: str, messages: list[OutgoingMessage]) -> list[str]:
        time.sleep(0.3)
        return send_batch(aws.clients.sqs, url, messages)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with make_sink(aws, send=slow) as sink:
            started = loop.time()
            for first_id in range(0, 60, 3):
                sink.offer(make_body(first_id=first_id))
                await asyncio.sleep(0)
            assert loop.time() - started < 0.1
            assert sink.depth == 20

    asyncio.run(scenario())
    assert ids_in(drain_lines(aws)) == list(range(60))
