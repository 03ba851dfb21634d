"""Where the data lives: the SQS queues, the lake bucket (and its access-log bucket), the candles table.

Every name, key and prefix is the spec's. Queues are encrypted (SSE-SQS) and TLS-only, each with its
dead-letter queue after the spec's receive count; the lake is versioned, encrypted, private, TLS-only,
logged, and ages the raw payloads into cheaper storage; the table is on-demand with point-in-time
recovery and deletion protection.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.checks import skip_checkov
from infra.cdk.config import Sizing
from infra.spec import QueueSpec, ResourceSpec


@dataclass(frozen=True, slots=True)
class QueuePair:
    queue: sqs.Queue
    dlq: sqs.Queue


@dataclass(frozen=True, slots=True)
class DataStores:
    trades: QueuePair
    samples: QueuePair
    lake: s3.Bucket
    access_logs: s3.Bucket
    table: dynamodb.Table


def data_stores(scope: Construct, spec: ResourceSpec, sizing: Sizing) -> DataStores:
    access_logs = _access_log_bucket(scope, sizing)
    return DataStores(
        trades=queue_with_dlq(scope, "Trades", spec.queue),
        samples=queue_with_dlq(scope, "SpreadSamples", spec.samples_queue),
        lake=_lake_bucket(scope, spec, sizing, access_logs),
        access_logs=access_logs,
        table=_candles_table(scope, spec),
    )


def queue_with_dlq(scope: Construct, construct_id: str, spec: QueueSpec) -> QueuePair:
    """A queue whose messages move to its dead-letter queue after ``max_receive_count`` receives."""
    dlq = encrypted_queue(
        scope, f"{construct_id}Dlq", spec.dlq_name, Duration.seconds(spec.dlq_retention_s)
    )
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=spec.name,
        visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
        retention_period=Duration.seconds(spec.retention_s),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
    )
    _skip_sse_sqs_false_positive(queue)
    return QueuePair(queue, dlq)


def encrypted_queue(
    scope: Construct, construct_id: str, name: str, retention: Duration
) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        retention_period=retention,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    _skip_sse_sqs_false_positive(queue)
    return queue


def _skip_sse_sqs_false_positive(queue: sqs.Queue) -> None:
    skip_checkov(
        queue,
        "CKV_AWS_27",
        "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); checkov's CloudFormation check "
        "only recognises KmsMasterKeyId. SNS cannot deliver to a queue under the aws/sqs key.",
    )


def _access_log_bucket(scope: Construct, sizing: Sizing) -> s3.Bucket:
    """Server access logs of the lake and the load balancer's access logs."""
    bucket = s3.Bucket(
        scope,
        "AccessLogs",
        # S3 server access logging and ALB access logs can only write SSE-S3 objects.
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=True,
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-logs",
                expiration=Duration.days(sizing.access_logs_expire_days),
                noncurrent_version_expiration=Duration.days(1),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
    )
    skip_checkov(
        bucket,
        "CKV_AWS_18",
        "This is the access-log bucket itself; logging it into itself would log its own log writes.",
    )
    return bucket


def _lake_bucket(
    scope: Construct, spec: ResourceSpec, sizing: Sizing, access_logs: s3.Bucket
) -> s3.Bucket:
    b = spec.bucket
    return s3.Bucket(
        scope,
        "Lake",
        bucket_name=b.name,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=f"s3/{b.name}/",
        removal_policy=RemovalPolicy.RETAIN,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="raw-to-colder-storage",
                prefix=f"{b.raw_prefix}/",
                transitions=[
                    s3.Transition(
                        storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                        transition_after=Duration.days(sizing.raw_to_infrequent_access_days),
                    ),
                    s3.Transition(
                        storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                        transition_after=Duration.days(sizing.raw_to_glacier_ir_days),
                    ),
                ],
            ),
            s3.LifecycleRule(
                id="expire-athena-results",
                prefix=f"{b.athena_results_prefix}/",
                expiration=Duration.days(sizing.athena_results_expire_days),
            ),
            # Candle objects are rewritten whenever their candles change: keep old versions a while.
            s3.LifecycleRule(
                id="expire-old-versions",
                noncurrent_version_expiration=Duration.days(sizing.noncurrent_versions_expire_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            ),
        ],
    )


def _candles_table(scope: Construct, spec: ResourceSpec) -> dynamodb.Table:
    t = spec.table
    table = dynamodb.Table(
        scope,
        "Candles",
        table_name=t.name,
        partition_key=dynamodb.Attribute(name=t.partition_key, type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name=t.sort_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        deletion_protection=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    skip_checkov(
        table,
        "CKV_AWS_119",
        "Encrypted with the AWS managed key (aws/dynamodb): the candles are derived from public "
        "market data; a customer managed key would add KMS grants for every reader and a cost per "
        "request, and no confidentiality.",
    )
    return table
