"""The stack's customer managed KMS key, for what AWS managed keys cannot do.

CloudWatch alarms can publish to an encrypted SNS topic only when its key's policy lets
``cloudwatch.amazonaws.com`` use the key, which an AWS managed key never does; the same key encrypts
the log groups and the Prefect API key secret. The data stores use SSE-S3, SSE-SQS and DynamoDB's
AWS managed key instead (see docs/aws.md).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.cdk.config import DeployNames


def ops_key(scope: Construct, names: DeployNames) -> kms.Key:
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        "OpsKey",
        alias=names.key_alias,
        description="candleflow: alerts topic, log groups, Prefect API key secret",
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.RETAIN,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishToTheAlertsTopic",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=["*"],  # in a key policy, "*" is this key
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchLogsEncryptThisAccountsLogGroups",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:DescribeKey",
            ],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                }
            },
        )
    )
    return key
