"""SQS adapter: the trades queue and its dead-letter queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import translate

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 1024 * 1024  # SendMessageBatch payload limit, all entries together


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    body: str
    attributes: dict[str, str]

    @property
    def size(self) -> int:
        return len(self.body.encode("utf-8")) + sum(
            len(k) + len(v) + 6 for k, v in self.attributes.items()
        )


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    sent_timestamp_ms: int
    receive_count: int


def queue_url(client: SQSClient, name: str) -> str:
    with translate("sqs", "GetQueueUrl", f"queue {name!r}"):
        return client.get_queue_url(QueueName=name)["QueueUrl"]


def _string_attributes(attrs: dict[str, str]) -> dict[str, Any]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()}


def send_batch(client: SQSClient, url: str, messages: list[OutgoingMessage]) -> list[str]:
    """Send up to 10 messages in one call (<= 1 MiB in all); returns error texts of failed entries."""
    if not messages:
        return []
    if len(messages) > MAX_BATCH_ENTRIES or sum(m.size for m in messages) > MAX_BATCH_BYTES:
        raise ValueError("a SendMessageBatch holds at most 10 messages and 1 MiB in all")
    entries: list[Any] = [
        {
            "Id": str(i),
            "MessageBody": m.body,
            "MessageAttributes": _string_attributes(m.attributes),
        }
        for i, m in enumerate(messages)
    ]
    with translate("sqs", "SendMessageBatch", url):
        response = client.send_message_batch(QueueUrl=url, Entries=entries)
    return [
        f"{f['Id']}: {f.get('Code')} {f.get('Message', '')}" for f in response.get("Failed", [])
    ]


def chunk_for_batches(messages: list[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """Group messages into SendMessageBatch calls inside the 10-entry and 1 MiB limits."""
    batches: list[list[OutgoingMessage]] = []
    current: list[OutgoingMessage] = []
    size = 0
    for m in messages:
        if current and (len(current) == MAX_BATCH_ENTRIES or size + m.size > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(m)
        size += m.size
    if current:
        batches.append(current)
    return batches


def receive(client: SQSClient, url: str, max_messages: int, wait_s: int) -> list[ReceivedMessage]:
    """One ReceiveMessage call (at most 10 messages)."""
    with translate("sqs", "ReceiveMessage", url):
        response = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(max_messages, 10),
            WaitTimeSeconds=wait_s,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
    out = []
    for m in response.get("Messages", []):
        system = m.get("Attributes", {})
        attrs = {k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()}
        out.append(
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                attributes=attrs,
                sent_timestamp_ms=int(system.get("SentTimestamp", 0)),
                receive_count=int(system.get("ApproximateReceiveCount", 1)),
            )
        )
    return out


def delete(client: SQSClient, url: str, receipt_handles: Sequence[str]) -> list[str]:
    """Delete messages (any number, 10 per call); returns error texts of failed entries."""
    failed: list[str] = []
    for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
        chunk = receipt_handles[start : start + MAX_BATCH_ENTRIES]
        entries: list[Any] = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
        with translate("sqs", "DeleteMessageBatch", url):
            response = client.delete_message_batch(QueueUrl=url, Entries=entries)
        failed += [f"{f['Id']}: {f.get('Code')}" for f in response.get("Failed", [])]
    return failed


def extend_visibility(
    client: SQSClient, url: str, receipt_handles: list[str], seconds: int
) -> None:
    for start in range(0, len(receipt_handles), MAX_BATCH_ENTRIES):
        chunk = receipt_handles[start : start + MAX_BATCH_ENTRIES]
        entries: list[Any] = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds}
            for i, h in enumerate(chunk)
        ]
        with translate("sqs", "ChangeMessageVisibilityBatch", url):
            client.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def dead_letter(client: SQSClient, dlq_url: str, message: ReceivedMessage, reason: str) -> None:
    """Copy an undecodable message to the DLQ with the reason as an attribute (the caller deletes it)."""
    attrs = dict(message.attributes)
    attrs.update({"candleflow-error": reason[:1000], "source-message-id": message.message_id})
    with translate("sqs", "SendMessage", dlq_url):
        client.send_message(
            QueueUrl=dlq_url,
            MessageBody=message.body or " ",
            MessageAttributes=_string_attributes(attrs),
        )


def depth(client: SQSClient, url: str) -> tuple[int, int]:
    """(visible, in flight) message counts, approximate as SQS reports them."""
    with translate("sqs", "GetQueueAttributes", url):
        attrs = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def oldest_message_age_s(cloudwatch: CloudWatchClient, queue_name: str, now_s: float) -> int | None:
    """SQS's ``ApproximateAgeOfOldestMessage`` of the last 5 minutes from CloudWatch (seconds).

    SQS has no API attribute for it, and peeking would count as a receive towards the redrive
    limit. None when CloudWatch has no datapoint (a new queue, or an emulator without metrics).
    """
    with translate("cloudwatch", "GetMetricStatistics", queue_name):
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=datetime.fromtimestamp(now_s - 300, tz=UTC),
            EndTime=datetime.fromtimestamp(now_s, tz=UTC),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    if not points:
        return None
    newest = max(points, key=lambda p: p["Timestamp"])
    return int(newest["Maximum"])
