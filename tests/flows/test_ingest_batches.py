"""How the ingest cuts its work into batches."""

from __future__ import annotations

from tasks.aws import sqs
from tasks.core.contract import encode_body
from tasks.ingest import IngestContext, receive_batch
from tests.builders import BASE_TIME, Trade
from tests.conftest import AwsEnv


def body(first_id: int, count: int) -> sqs.OutgoingMessage:
    ids = range(first_id, first_id + count)
    enc = encode_body([Trade(trade_id=i, trade_time=BASE_TIME).line().encode() for i in ids], 2048)
    return sqs.OutgoingMessage(enc.body, enc.attributes)


def test_batches_stop_before_exceeding_batch_max_trades(aws: AwsEnv) -> None:
    messages = [body(i * 100, 100) for i in range(6)]
    for chunk in sqs.chunk_for_batches(messages):
        assert sqs.send_batch(aws.clients.sqs, aws.resources.queue_url, chunk) == []
    settings = aws.settings.model_copy(update={"batch_max_trades": 250})
    ctx = IngestContext(
        settings, aws.spec, aws.clients, aws.resources.queue_url, aws.resources.dlq_url
    )
    sizes = []
    while batch := receive_batch.fn(ctx, 0).messages:
        sizes.append(len(batch))
    assert sizes == [2, 2, 2]
