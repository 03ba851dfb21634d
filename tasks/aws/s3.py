"""S3 adapter: the lake bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tasks.aws._errors import translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def put(client: S3Client, bucket: str, key: str, body: bytes, content_type: str) -> None:
    with translate("s3", "PutObject", f"s3://{bucket}/{key}"):
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def get(client: S3Client, bucket: str, key: str) -> bytes:
    with translate("s3", "GetObject", f"s3://{bucket}/{key}"):
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(client: S3Client, bucket: str, prefix: str, start_after: str = "") -> Iterator[str]:
    """The keys under ``prefix`` in name order; only those after ``start_after`` when given."""
    paginator = client.get_paginator("list_objects_v2")
    with translate("s3", "ListObjectsV2", f"s3://{bucket}/{prefix}"):
        pages = (
            paginator.paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
            if start_after
            else paginator.paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"]
