"""The lake's objects, built in memory from accepted trades: raw NDJSON and Parquet per partition.

Keys name the partition (``symbol=/date=/hour=``), the trade-id span and a digest of the content, so
writing the same trades again rewrites the same objects.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass

import polars as pl

from tasks.core.keys import lake_key, quarantine_key
from tasks.core.trades import QUOTE, Reject

PARQUET_SCHEMA_NOTE = "symbol/date/hour are Hive partition columns, not stored in the files"


@dataclass(frozen=True, slots=True)
class LakeObject:
    key: str
    body: bytes
    content_type: str


def _digest(chunks: list[str]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def parquet_frame(trades: pl.DataFrame) -> pl.DataFrame:
    """The Parquet columns of one partition's trades (exact decimals, UTC timestamps)."""
    return trades.sort("trade_id").select(
        "trade_id",
        "price",
        "quantity",
        (pl.col("price").cast(QUOTE) * pl.col("quantity")).alias("quote_quantity"),
        "is_buyer_maker",
        pl.col("trade_time").cast(pl.Datetime("ms", "UTC")).alias("trade_time"),
        pl.col("event_time").cast(pl.Datetime("ms", "UTC")).alias("event_time"),
        "ts_event",
        "ts_init",
    )


def trade_objects(trades: pl.DataFrame, raw_prefix: str, parquet_prefix: str) -> list[LakeObject]:
    """Raw NDJSON (the exact payload lines, gzipped) and Parquet for each symbol-hour partition."""
    if trades.height == 0:
        return []
    objects: list[LakeObject] = []
    keyed = trades.with_columns(hour=pl.col("trade_time") - pl.col("trade_time") % 3_600_000)
    for (symbol, hour), part in keyed.partition_by("symbol", "hour", as_dict=True).items():
        part = part.sort("trade_id")
        raws = part.get_column("raw").to_list()
        digest = _digest(raws)
        first, last = int(part["trade_id"][0]), int(part["trade_id"][-1])
        ndjson = gzip.compress(("\n".join(raws) + "\n").encode("utf-8"), compresslevel=5, mtime=0)
        buffer = io.BytesIO()
        parquet_frame(part).write_parquet(buffer, compression="zstd", statistics=True)
        args = (str(symbol), int(hour), first, last, digest)
        objects.append(
            LakeObject(lake_key(raw_prefix, *args, "ndjson.gz"), ndjson, "application/x-ndjson")
        )
        objects.append(
            LakeObject(
                lake_key(parquet_prefix, *args, "parquet"),
                buffer.getvalue(),
                "application/vnd.apache.parquet",
            )
        )
    return objects


def quarantine_object(rejects: list[Reject], received_ms: int, prefix: str) -> LakeObject | None:
    """One NDJSON object of rejected lines, each with its reason and source message id."""
    if not rejects:
        return None
    rows = [
        json.dumps(
            {"message_id": r.message_id, "reason": r.reason, "line": r.raw},
            ensure_ascii=False,
        )
        for r in rejects
    ]
    return LakeObject(
        quarantine_key(prefix, received_ms, _digest(rows)),
        ("\n".join(rows) + "\n").encode("utf-8"),
        "application/x-ndjson",
    )
