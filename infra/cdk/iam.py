"""Least privilege per component: the task roles of the producer, the worker and the API.

Every statement names its actions (no ``*``, no ``service:*``) and its resources. Only actions AWS
cannot scope to a resource get ``"*"``, and they are the ones in ``UNSCOPED_ACTIONS``, all reads or
lists. The task *execution* roles (pull the image, write logs, read the Prefect API key secret to
inject it) are made by ECS constructs in ``compute.py``.

- producer (and the spread sampler): send to the trades and samples queues; nothing else.
- worker (the flows): consume both queues and dead-letter into their DLQs; read and write the lake's
  objects; item reads and writes on the candles table; the Glue tables' partitions; publish alerts;
  Athena in its workgroup; start the crawler; read the queues' CloudWatch metrics.
- api: read the candles table, the queues' depths and their CloudWatch metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.cdk.catalog import glue_arns
from infra.cdk.data import DataStores
from infra.spec import ResourceSpec

# Actions that support no resource-level permission: granted on "*", and only these.
UNSCOPED_ACTIONS = frozenset(
    {
        "cloudwatch:GetMetricStatistics",  # the queues' ApproximateAgeOfOldestMessage
        "sns:ListTopics",  # tasks/aws/sns.topic_arn finds the alerts topic by name
        "athena:ListWorkGroups",  # tasks/aws/athena.ensure_workgroup finds the workgroup
    }
)
SEND = ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
CONSUME = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
]
QUEUE_STATUS = ["sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
LAKE_OBJECTS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
LAKE_BUCKET = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
TABLE_ITEMS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
]
TABLE_READS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
GLUE_TABLES = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
    "glue:BatchCreatePartition",
]
ATHENA_QUERIES = [
    "athena:GetWorkGroup",
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
]


@dataclass(frozen=True, slots=True)
class TaskRoles:
    producer: iam.Role
    worker: iam.Role
    api: iam.Role


def task_roles(
    scope: Construct, spec: ResourceSpec, stores: DataStores, topic: sns.ITopic, key: kms.IKey
) -> TaskRoles:
    return TaskRoles(
        producer=_role(scope, "ProducerRole", "producer and spread sampler", _producer(stores)),
        worker=_role(
            scope, "WorkerRole", "Prefect worker", _worker(scope, spec, stores, topic, key)
        ),
        api=_role(scope, "ApiRole", "read-only API and dashboard", _api(stores)),
    )


def _role(
    scope: Construct, construct_id: str, what: str, statements: list[iam.PolicyStatement]
) -> iam.Role:
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description=f"candleflow {what}: task role",
    )
    for statement in statements:
        role.add_to_policy(statement)
    return role


def _producer(stores: DataStores) -> list[iam.PolicyStatement]:
    return [
        _allow(
            "SendTradesAndSpreadSamples",
            SEND,
            [stores.trades.queue.queue_arn, stores.samples.queue.queue_arn],
        )
    ]


def _worker(
    scope: Construct, spec: ResourceSpec, stores: DataStores, topic: sns.ITopic, key: kms.IKey
) -> list[iam.PolicyStatement]:
    stack = Stack.of(scope)
    queues, dlqs = (stores.trades, stores.samples), (stores.trades.dlq, stores.samples.dlq)
    lake = stores.lake
    return [
        _allow("ConsumeTheQueues", CONSUME, [p.queue.queue_arn for p in queues]),
        _allow("DeadLetterUndecodableMessages", SEND, [q.queue_arn for q in dlqs]),
        _allow("LakeObjects", LAKE_OBJECTS, [lake.arn_for_objects("*")]),
        _allow("LakeListing", LAKE_BUCKET, [lake.bucket_arn]),
        _allow("CandlesTableItems", TABLE_ITEMS, [stores.table.table_arn]),
        _allow("LakeCatalog", GLUE_TABLES, glue_arns(stack, spec.glue_database)),
        _allow(
            "StartTheCrawler",
            ["glue:StartCrawler", "glue:GetCrawler"],
            [
                stack.format_arn(
                    service="glue", resource="crawler", resource_name=spec.catalog.crawler
                )
            ],
        ),
        _allow("PublishAlerts", ["sns:Publish"], [topic.topic_arn]),
        # The topic is encrypted with the stack's key: publishing encrypts with it.
        _allow("EncryptAlerts", ["kms:GenerateDataKey", "kms:Decrypt"], [key.key_arn]),
        _allow(
            "QueryTheLake",
            ATHENA_QUERIES,
            [
                stack.format_arn(
                    service="athena",
                    resource="workgroup",
                    resource_name=spec.catalog.athena_workgroup,
                )
            ],
        ),
        _allow("FindTopicAndWorkgroup", ["sns:ListTopics", "athena:ListWorkGroups"], ["*"]),
        _allow("QueueMetrics", ["cloudwatch:GetMetricStatistics"], ["*"]),
    ]


def _api(stores: DataStores) -> list[iam.PolicyStatement]:
    queues = [
        q.queue_arn for pair in (stores.trades, stores.samples) for q in (pair.queue, pair.dlq)
    ]
    return [
        _allow("ReadCandles", TABLE_READS, [stores.table.table_arn]),
        _allow("QueueDepths", QUEUE_STATUS, queues),
        _allow("QueueMetrics", ["cloudwatch:GetMetricStatistics"], ["*"]),
    ]


def _allow(sid: str, actions: list[str], resources: list[str]) -> iam.PolicyStatement:
    if resources == ["*"] and not set(actions) <= UNSCOPED_ACTIONS:
        raise ValueError(f"{sid}: {sorted(set(actions) - UNSCOPED_ACTIONS)} must name resources")
    return iam.PolicyStatement(sid=sid, actions=actions, resources=resources)
