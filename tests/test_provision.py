from __future__ import annotations

import json

from infra.provision import provision
from tests.conftest import AwsEnv


def test_provision_creates_every_resource_and_is_idempotent(aws: AwsEnv) -> None:
    again = provision(aws.clients, aws.spec)
    assert again == aws.resources
    attrs = aws.clients.sqs.get_queue_attributes(
        QueueUrl=aws.resources.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(aws.spec.queue.dlq_name)
    assert int(redrive["maxReceiveCount"]) == aws.settings.max_receive_count
    aws.clients.s3.head_bucket(Bucket=aws.spec.bucket.name)
    table = aws.clients.dynamodb.describe_table(TableName=aws.spec.table.name)["Table"]
    assert {k["AttributeName"] for k in table["KeySchema"]} == {"marketid", "timestamp"}
    assert aws.clients.glue.get_database(Name=aws.spec.glue_database)["Database"]["Name"]
    topics = [t["TopicArn"] for t in aws.clients.sns.list_topics()["Topics"]]
    assert aws.resources.topic_arn in topics
