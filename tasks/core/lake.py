"""The lake's objects, built in memory from accepted trades: raw NDJSON and Parquet per partition.

Keys name the partition (``symbol=/date=/hour=``), the trade-id span and a digest of the content, so
writing the same trades again rewrites the same objects. Trades already written under other keys (a
batch redelivered after a crash, grouped differently) are found by ``overlapping`` and
``object_trade_ids`` and left out by the writer (``tasks.lake_writes``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from tasks.core.keys import lake_key, lake_span, quarantine_key
from tasks.core.trades import QUOTE, Reject, decode_lines, lines_frame

NDJSON = "application/x-ndjson"
PARQUET = "application/vnd.apache.parquet"
PARQUET_SCHEMA_NOTE = "symbol/date/hour are Hive partition columns, not stored in the files"
_SLICE_LINES = 20_000  # lines joined, hashed and compressed at a time


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


def _text_slices(lines: pl.Series) -> Iterator[bytes]:
    """The NDJSON text of ``lines`` (each ended by a newline) as UTF-8, a slice of lines at a time."""
    for start in range(0, lines.len(), _SLICE_LINES):
        yield (lines.slice(start, _SLICE_LINES).str.join("\n").item() + "\n").encode("utf-8")


def _ndjson(lines: pl.Series) -> tuple[bytes, str]:
    """The lines as gzipped NDJSON and the digest of the NDJSON text, built a slice at a time.

    The output is byte for byte ``gzip.compress(text, compresslevel=5, mtime=0)`` and
    ``_digest(lines)``, without ever holding the whole text (or a Python object per line).
    """
    digest = hashlib.sha256()
    deflate = zlib.compressobj(5, zlib.DEFLATED, 31)  # wbits 31: gzip framing, mtime 0
    parts: list[bytes] = []
    for text in _text_slices(lines):
        digest.update(text)
        parts.append(deflate.compress(text))
    parts.append(deflate.flush())
    return b"".join(parts), digest.hexdigest()[:16]


def _lines_digest(lines: pl.Series) -> str:
    digest = hashlib.sha256()
    for text in _text_slices(lines):
        digest.update(text)
    return digest.hexdigest()[:16]


def partitions(trades: pl.DataFrame) -> list[pl.DataFrame]:
    """The trades of each symbol-hour partition, by trade id (each becomes two lake objects)."""
    if trades.height == 0:
        return []
    keyed = trades.with_columns(hour=pl.col("trade_time") - pl.col("trade_time") % 3_600_000)
    return [
        part.sort("trade_id") for part in keyed.partition_by("symbol", "hour", maintain_order=True)
    ]


def _span(part: pl.DataFrame) -> tuple[str, int, int, int]:
    ids = part.get_column("trade_id")
    return str(part["symbol"][0]), int(part["hour"][0]), int(ids[0]), int(ids[-1])


def raw_object(part: pl.DataFrame, prefix: str) -> LakeObject:
    """The exact payload lines of one partition's trades (sorted by id), gzipped NDJSON."""
    ndjson, digest = _ndjson(part.get_column("raw"))
    return LakeObject(lake_key(prefix, *_span(part), digest, "ndjson.gz"), ndjson, NDJSON)


def parquet_object(part: pl.DataFrame, prefix: str) -> LakeObject:
    """One partition's trades (sorted by id) as Parquet, named as their raw object is."""
    buffer = io.BytesIO()
    parquet_frame(part).write_parquet(buffer, compression="zstd", statistics=True)
    key = lake_key(prefix, *_span(part), _lines_digest(part.get_column("raw")), "parquet")
    return LakeObject(key, buffer.getvalue(), PARQUET)


def partition_objects(part: pl.DataFrame, raw_prefix: str, parquet_prefix: str) -> list[LakeObject]:
    """Raw NDJSON (the exact payload lines, gzipped) and Parquet of one partition's trades."""
    return [raw_object(part, raw_prefix), parquet_object(part, parquet_prefix)]


def overlapping(keys: Iterable[str], first_id: int, last_id: int) -> list[str]:
    """The lake keys whose trade-id span meets ``first_id..last_id`` (others' names say they
    cannot hold one of those trades)."""
    spans = ((k, lake_span(k)) for k in keys)
    return [
        k for k, span in spans if span is not None and span[0] <= last_id and span[1] >= first_id
    ]


def object_trade_ids(key: str, body: bytes) -> pl.Series:
    """The trade ids a lake object holds, read from its Parquet or from its raw lines."""
    if key.endswith(".parquet"):
        return pl.read_parquet(io.BytesIO(body), columns=["trade_id"]).get_column("trade_id")
    text = gzip.decompress(body) if key.endswith(".gz") else body
    rows, _ = decode_lines(lines_frame([(key, 0, text)]))
    return rows.get_column("t").cast(pl.Int64).alias("trade_id")


def trade_objects(trades: pl.DataFrame, raw_prefix: str, parquet_prefix: str) -> list[LakeObject]:
    """Raw NDJSON and Parquet for each symbol-hour partition."""
    return [
        obj
        for part in partitions(trades)
        for obj in partition_objects(part, raw_prefix, parquet_prefix)
    ]


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
        NDJSON,
    )
