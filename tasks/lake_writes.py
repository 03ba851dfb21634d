"""Trades into the lake once each, whatever redeliveries, regroupings and crashes came before.

The ingest writes a batch's trades to the lake before their candles. A worker that dies between the
two leaves trades in the lake that no candle holds yet; SQS redelivers them, maybe grouped with other
messages into other batches, so the same trades would come back under other keys. Before writing a
partition's objects the writer lists the partition's objects that may hold its trades (one
``ListObjectsV2`` from the batch's first trade id on: keys sort by last trade id), reads the trade ids
of those whose span meets the batch's, and writes only the trades none of them holds. Raw NDJSON
and Parquet are checked apart: a crash between the two puts leaves one without the other.

In the usual case (trades arrive in id order) the listing finds nothing and costs one request per
partition and format. Two workers writing the same trades at the same instant (a visibility
timeout shorter than a batch) can still both write them: keep ``CANDLEFLOW_VISIBILITY_TIMEOUT_S``
well above the longest batch.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from infra.spec import BucketSpec
from tasks.aws import s3
from tasks.aws.clients import AwsClients
from tasks.candle_writes import in_parallel
from tasks.core.keys import lake_scan
from tasks.core.lake import (
    LakeObject,
    object_trade_ids,
    overlapping,
    parquet_object,
    partitions,
    raw_object,
)

Builder = Callable[[pl.DataFrame, str], LakeObject]


def ids_in_lake(clients: AwsClients, bucket: str, prefix: str, part: pl.DataFrame) -> pl.Series:
    """The trade ids of ``part`` (one symbol-hour, sorted by id) already under ``prefix``."""
    first, last = int(part["trade_id"][0]), int(part["trade_id"][-1])
    folder, start_after = lake_scan(prefix, str(part["symbol"][0]), int(part["hour"][0]), first)
    keys = overlapping(s3.list_keys(clients.s3, bucket, folder, start_after), first, last)
    held = [object_trade_ids(k, s3.get(clients.s3, bucket, k)) for k in keys]
    return pl.concat(held) if held else pl.Series("trade_id", [], dtype=pl.Int64)


def write_once(clients: AwsClients, bucket: BucketSpec, trades: pl.DataFrame) -> list[str]:
    """Write the raw NDJSON and Parquet of each symbol-hour of ``trades``, leaving out trades the
    lake already holds; returns the keys written."""
    formats: list[tuple[str, Builder]] = [
        (bucket.raw_prefix, raw_object),
        (bucket.trades_prefix, parquet_object),
    ]

    def write(part: pl.DataFrame) -> list[str]:
        keys = []
        for prefix, build in formats:
            held = ids_in_lake(clients, bucket.name, prefix, part)
            todo = part.filter(~pl.col("trade_id").is_in(held)) if held.len() else part
            if todo.height:
                obj = build(todo, prefix)
                s3.put(clients.s3, bucket.name, obj.key, obj.body, obj.content_type)
                keys.append(obj.key)
        return keys

    return [k for keys in in_parallel(write, partitions(trades)) for k in keys]
