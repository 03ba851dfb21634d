"""Create or verify every resource of the spec at the configured endpoint. Safe to run again and again."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError

from infra.spec import QueueSpec, ResourceSpec
from tasks.aws import glue, sns
from tasks.aws._errors import error_code, translate
from tasks.aws.clients import AwsClients
from tasks.core.catalog import lake_tables, table_input

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Provisioned:
    queue_url: str
    dlq_url: str
    bucket: str
    table: str
    topic_arn: str
    glue_database: str
    alerts_inbox_url: str
    samples_queue_url: str


def provision(clients: AwsClients, spec: ResourceSpec) -> Provisioned:
    queue_url, dlq_url = _queue_with_dlq(clients, spec.queue)
    samples_url, _ = _queue_with_dlq(clients, spec.samples_queue)
    _bucket(clients, spec.bucket.name)
    _table(clients, spec)
    topic_arn, inbox_url = _alerts(clients, spec)
    _glue_database(clients, spec.glue_database)
    for lake_table in lake_tables(spec):
        glue.ensure_table(
            clients.glue, spec.glue_database, table_input(lake_table, spec.bucket.name)
        )
    return Provisioned(
        queue_url,
        dlq_url,
        spec.bucket.name,
        spec.table.name,
        topic_arn,
        spec.glue_database,
        inbox_url,
        samples_url,
    )


def _queue_with_dlq(clients: AwsClients, queue: QueueSpec) -> tuple[str, str]:
    """A queue and its dead-letter queue, with redrive after ``max_receive_count`` receives."""
    dlq_url = _queue(
        clients, queue.dlq_name, {"MessageRetentionPeriod": str(queue.dlq_retention_s)}
    )
    dlq_arn = clients.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    queue_url = _queue(
        clients,
        queue.name,
        {
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.retention_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
            ),
        },
    )
    return queue_url, dlq_url


def _alerts(clients: AwsClients, spec: ResourceSpec) -> tuple[str, str]:
    """The alerts topic, its SQS inbox (subscribed) and the configured e-mail/SMS subscriptions."""
    alerts = spec.alerts
    with translate("sns", "CreateTopic", alerts.topic):
        topic_arn = clients.sns.create_topic(Name=alerts.topic)["TopicArn"]
    inbox_url = _queue(
        clients, alerts.inbox_queue, {"MessageRetentionPeriod": str(alerts.inbox_retention_s)}
    )
    inbox_arn = clients.sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    # SNS may deliver to the inbox only from this topic.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "alerts-topic-to-inbox",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": inbox_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    with translate("sqs", "SetQueueAttributes", alerts.inbox_queue):
        clients.sqs.set_queue_attributes(
            QueueUrl=inbox_url, Attributes={"Policy": json.dumps(policy)}
        )
    if sns.ensure_subscription(clients.sns, topic_arn, "sqs", inbox_arn):
        log.info("subscribed queue %s to topic %s", alerts.inbox_queue, alerts.topic)
    for email in alerts.emails:
        if sns.ensure_subscription(clients.sns, topic_arn, "email", email):
            log.info("subscribed %s to %s (AWS e-mails a confirmation link)", email, alerts.topic)
    for number in alerts.sms_numbers:
        if sns.ensure_subscription(clients.sns, topic_arn, "sms", number):
            log.info("subscribed %s to %s by SMS", number, alerts.topic)
    return topic_arn, inbox_url


def _queue(clients: AwsClients, name: str, attributes: dict[str, str]) -> str:
    try:
        url = clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" not in error_code(exc) and "QueueDoesNotExist" not in error_code(exc):
            raise
        with translate("sqs", "CreateQueue", name):
            url = clients.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        log.info("created queue %s", name)
        return url
    with translate("sqs", "SetQueueAttributes", name):
        clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
    return url


def _bucket(clients: AwsClients, name: str) -> None:
    try:
        clients.s3.head_bucket(Bucket=name)
        return
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    with translate("s3", "CreateBucket", name):
        if clients.region == "us-east-1":
            clients.s3.create_bucket(Bucket=name)
        else:
            clients.s3.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": clients.region},  # type: ignore[typeddict-item]
            )
    log.info("created bucket %s", name)


def _table(clients: AwsClients, spec: ResourceSpec) -> None:
    t = spec.table
    try:
        clients.dynamodb.describe_table(TableName=t.name)
        return
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    with translate("dynamodb", "CreateTable", t.name):
        clients.dynamodb.create_table(
            TableName=t.name,
            AttributeDefinitions=[
                {"AttributeName": t.partition_key, "AttributeType": "S"},
                {"AttributeName": t.sort_key, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": t.partition_key, "KeyType": "HASH"},
                {"AttributeName": t.sort_key, "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        clients.dynamodb.get_waiter("table_exists").wait(
            TableName=t.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    log.info("created table %s", t.name)


def _glue_database(clients: AwsClients, name: str) -> None:
    try:
        clients.glue.get_database(Name=name)
        return
    except ClientError as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise
    with translate("glue", "CreateDatabase", name):
        clients.glue.create_database(
            DatabaseInput={
                "Name": name,
                "Description": "candleflow lake: trades and candles",
            }
        )
    log.info("created Glue database %s", name)
