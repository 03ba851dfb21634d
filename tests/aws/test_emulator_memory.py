"""The embedded emulator frees what it no longer holds: a long-running one must not grow per request.

moto tracks every model object it creates; the emulator makes that tracking weak
(``infra.moto_patches.make_model_tracking_weak``). These tests run against the session's emulator, a
server thread in this process, so its objects can be counted here.
"""

from __future__ import annotations

import gc
import uuid

from moto.dynamodb.models.dynamo_type import Item
from moto.sqs.models import Message, Queue

from infra.moto_patches import WeakInstances
from tests.conftest import AwsEnv


def _alive(kind: type, match: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind) and match in repr(vars(o)))


def test_deleted_sqs_messages_are_freed_and_live_queues_still_tracked(aws: AwsEnv) -> None:
    sqs, url = aws.clients.sqs, aws.resources.queue_url
    marker = f"freed-{uuid.uuid4()}"
    for _ in range(20):
        sqs.send_message(QueueUrl=url, MessageBody=marker)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )
    assert _alive(Message, marker) == 0
    assert isinstance(Queue.instances_tracked, WeakInstances)
    assert any(q.name == aws.spec.queue.name for q in Queue.instances_tracked)


def test_items_copied_out_by_dynamodb_reads_are_freed(aws: AwsEnv) -> None:
    ddb, table = aws.clients.dynamodb, aws.spec.table.name
    marker = f"freed-{uuid.uuid4()}"
    key = {"marketid": {"S": marker}, "timestamp": {"S": "2024-08-08T00:00:00Z"}}
    ddb.put_item(TableName=table, Item={**key, "note": {"S": marker}})
    for _ in range(50):  # each read deep-copies the item inside moto
        ddb.query(
            TableName=table,
            KeyConditionExpression="marketid = :m",
            ExpressionAttributeValues={":m": {"S": marker}},
        )
    assert _alive(Item, marker) == 1  # the stored item, nothing else
