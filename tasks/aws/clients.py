"""The one place boto3 clients are built.

Endpoints, region and credentials come only from the standard AWS chain (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, profiles), so the same code talks to
the embedded moto server, LocalStack or real AWS. Clients are made on demand, never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

DEFAULT_REGION = "us-east-1"


def _config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=32,
        connect_timeout=5,
        read_timeout=30,
    )


@dataclass
class AwsClients:
    """Lazily built clients sharing one boto3 session."""

    session: boto3.session.Session = field(default_factory=boto3.session.Session)

    @property
    def region(self) -> str:
        return self.session.region_name or DEFAULT_REGION

    @cached_property
    def sqs(self) -> SQSClient:
        return self.session.client("sqs", region_name=self.region, config=_config())

    @cached_property
    def s3(self) -> S3Client:
        return self.session.client("s3", region_name=self.region, config=_config())

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self.session.client("dynamodb", region_name=self.region, config=_config())

    @cached_property
    def sns(self) -> SNSClient:
        return self.session.client("sns", region_name=self.region, config=_config())

    @cached_property
    def glue(self) -> GlueClient:
        return self.session.client("glue", region_name=self.region, config=_config())

    @cached_property
    def sts(self) -> STSClient:
        return self.session.client("sts", region_name=self.region, config=_config())

    @cached_property
    def athena(self) -> AthenaClient:
        return self.session.client("athena", region_name=self.region, config=_config())

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return self.session.client("cloudwatch", region_name=self.region, config=_config())
