"""The lake holds each trade once per format, however often and however grouped it is written."""

from __future__ import annotations

import gzip
import io

import polars as pl
import pytest

from tasks.aws import s3
from tasks.core.keys import lake_span
from tasks.core.lake import partitions, raw_object
from tasks.lake_writes import write_once
from tests.conftest import AwsEnv
from tests.core.test_lake_objects import lake_frame


def raw_ids(aws: AwsEnv) -> list[int]:
    bucket = aws.spec.bucket
    ids: list[int] = []
    for key in s3.list_keys(aws.clients.s3, bucket.name, bucket.raw_prefix + "/"):
        for line in gzip.decompress(s3.get(aws.clients.s3, bucket.name, key)).splitlines():
            ids.append(int(line.split(b'"t":')[1].split(b",")[0]))
    return sorted(ids)


def parquet_ids(aws: AwsEnv) -> list[int]:
    bucket = aws.spec.bucket
    ids: list[int] = []
    for key in s3.list_keys(aws.clients.s3, bucket.name, bucket.trades_prefix + "/"):
        body = s3.get(aws.clients.s3, bucket.name, key)
        ids += pl.read_parquet(io.BytesIO(body))["trade_id"].to_list()
    return sorted(ids)


def write(aws: AwsEnv, ids: list[int]) -> list[str]:
    return write_once(aws.clients, aws.spec.bucket, lake_frame(ids))


@pytest.mark.parametrize(
    "batches",
    [
        [[1, 2, 3], [1, 2, 3]],  # redelivered whole
        [list(range(1, 11)), list(range(5, 16))],  # regrouped: half of it again, with more
        [[4, 9, 12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]],  # interleaved
        [list(range(20, 30)), [1, 2, 3]],  # older trades after newer ones
        [[5], [1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7], [2, 7, 8]],
    ],
    ids=["whole", "regrouped", "interleaved", "older-later", "many"],
)
def test_each_trade_lands_once_in_each_format(aws: AwsEnv, batches: list[list[int]]) -> None:
    for ids in batches:
        write(aws, ids)
    expected = sorted({i for ids in batches for i in ids})
    assert raw_ids(aws) == parquet_ids(aws) == expected


def test_a_batch_already_written_writes_nothing(aws: AwsEnv) -> None:
    assert len(write(aws, [1, 2, 3])) == 2
    assert write(aws, [3, 2, 1]) == []


def test_raw_written_without_its_parquet_gets_only_the_parquet(aws: AwsEnv) -> None:
    """A crash between the raw put and the Parquet put, then the batch again."""
    bucket = aws.spec.bucket
    (part,) = partitions(lake_frame([1, 2, 3]))
    obj = raw_object(part, bucket.raw_prefix)
    s3.put(aws.clients.s3, bucket.name, obj.key, obj.body, obj.content_type)
    raw, parquet = write(aws, [1, 2, 3, 4])
    assert raw.startswith(bucket.raw_prefix + "/") and lake_span(raw) == (4, 4)
    assert parquet.startswith(bucket.trades_prefix + "/") and lake_span(parquet) == (1, 4)
    assert raw_ids(aws) == [1, 2, 3, 4] and parquet_ids(aws) == [1, 2, 3, 4]
