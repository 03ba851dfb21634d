"""How the ingest cuts its work: batches bounded by trades, validation in groups of lines."""

from __future__ import annotations

import pytest

from infra.spec import resource_spec
from tasks import ingest
from tasks.aws import sqs
from tasks.aws.clients import AwsClients
from tasks.core.contract import encode_body
from tasks.ingest import Batch, IngestContext, decode_and_validate, receive_batch
from tasks.settings import Settings
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


def received(i: int, lines: list[str]) -> sqs.ReceivedMessage:
    enc = encode_body([line.encode() for line in lines], 64)
    return sqs.ReceivedMessage(f"m{i}", f"h{i}", enc.body, enc.attributes, BASE_TIME, 1)


def test_validating_in_groups_of_lines_gives_the_one_pass_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = [Trade(trade_id=i, price=f"{i}.5", trade_time=BASE_TIME + i).line() for i in range(30)]
    poison = ["not json", Trade(trade_id=99, price="-1").line(), Trade(symbol="DOGEUSDT").line()]
    batch = Batch(
        [
            received(0, good[:10] + poison[:1]),
            received(1, good[5:15]),  # duplicates across groups
            sqs.ReceivedMessage("m2", "h2", "@@@", {"content-encoding": "gzip"}, BASE_TIME, 1),
            received(3, poison[1:] + good[15:]),
        ]
    )
    settings = Settings()
    ctx = IngestContext(settings, resource_spec(settings), AwsClients(), "", "")
    once = decode_and_validate.fn(ctx, batch, BASE_TIME)
    monkeypatch.setattr(ingest, "VALIDATE_LINES", 4)
    grouped = decode_and_validate.fn(ctx, batch, BASE_TIME)
    assert grouped.trades.equals(once.trades)
    assert (grouped.lines, grouped.duplicates) == (once.lines, once.duplicates) == (38, 5)
    assert grouped.rejects == once.rejects and len(once.rejects) == 3
    assert [(m.message_id, reason) for m, reason in grouped.undecodable] == [
        (m.message_id, reason) for m, reason in once.undecodable
    ]
