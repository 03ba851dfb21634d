"""The Glue catalog of the lake as pure data: table and partition inputs, and partitions of object keys.

Two tables, both Hive-partitioned Parquet under the lake bucket:

- ``trades``  at ``s3://<lake>/trades/``, partitioned by ``symbol``, ``date``, ``hour`` (strings);
- ``candles`` at ``s3://<lake>/candles/``, partitioned by ``interval``, ``symbol``, ``date`` (strings).

Column types are derived from the polars schemas the files are written with, so the catalog cannot drift
from the data: ``Decimal(38, 8)`` is ``decimal(38,8)``, ``Datetime(ms, UTC)`` is ``timestamp``, ``Int64``
is ``bigint``. A partition's location is always ``<table location><k=v/...>/``, which is both what Athena
and the Glue crawler expect and what lets the local engine prune partitions by path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import polars as pl

from tasks.core.candle_lake import CANDLE_PARTITION_KEYS, CANDLES_COLUMNS
from tasks.core.spread_lake import SPREAD_PARTITION_KEYS, SPREADS_COLUMNS
from tasks.core.trades import PRICE, QUOTE

if TYPE_CHECKING:
    from mypy_boto3_glue.type_defs import (
        ColumnTypeDef,
        PartitionInputTypeDef,
        StorageDescriptorTypeDef,
        TableInputTypeDef,
    )

    from infra.spec import ResourceSpec

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TABLE_PARAMETERS = {"classification": "parquet", "EXTERNAL": "TRUE", "typeOfData": "file"}

TRADE_PARTITION_KEYS = ("symbol", "date", "hour")
_TIME = pl.Datetime("ms", "UTC")
TRADES_COLUMNS: dict[str, pl.DataType] = {
    "trade_id": pl.Int64(),
    "price": PRICE,
    "quantity": PRICE,
    "quote_quantity": QUOTE,
    "is_buyer_maker": pl.Boolean(),
    "trade_time": _TIME,
    "event_time": _TIME,
    "ts_event": pl.Int64(),
    "ts_init": pl.Int64(),
}

Engine = Literal["athena", "local"]


@dataclass(frozen=True, slots=True)
class LakeTable:
    """One Glue table over a prefix of the lake bucket."""

    name: str
    prefix: str
    columns: tuple[tuple[str, pl.DataType], ...]
    partition_keys: tuple[str, ...]
    description: str

    def location(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.prefix}/"

    def partition_location(self, bucket: str, values: tuple[str, ...]) -> str:
        return f"{self.location(bucket)}{hive_path(self.partition_keys, values)}/"


def lake_tables(spec: ResourceSpec) -> tuple[LakeTable, ...]:
    """The trades, candles and spread samples tables of the spec's lake."""
    return (
        LakeTable(
            spec.catalog.trades_table,
            spec.bucket.trades_prefix,
            tuple(TRADES_COLUMNS.items()),
            TRADE_PARTITION_KEYS,
            "Accepted Binance trades, one row per distinct (symbol, trade_id); exact decimals.",
        ),
        LakeTable(
            spec.catalog.candles_table,
            spec.bucket.candles_prefix,
            tuple(CANDLES_COLUMNS.items()),
            CANDLE_PARTITION_KEYS,
            "Binance klines (1m, 1h, 1d) as stored in DynamoDB, rebuilt per hour or day.",
        ),
        LakeTable(
            spec.catalog.spreads_table,
            spec.bucket.spreads_prefix,
            tuple(SPREADS_COLUMNS.items()),
            SPREAD_PARTITION_KEYS,
            "Order-book spread samples (Binance, BTCMarkets), every field of each; decimals at 18 places.",
        ),
    )


def glue_type(dtype: pl.DataType) -> str:
    """The Glue (Hive) type of a polars column type."""
    if isinstance(dtype, pl.Decimal):
        return f"decimal({dtype.precision},{dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    simple = {
        pl.Int64: "bigint",
        pl.Int32: "int",
        pl.Boolean: "boolean",
        pl.String: "string",
        pl.Float64: "double",
        pl.Date: "date",
    }
    for polars_class, name in simple.items():
        if dtype == polars_class:
            return name
    raise ValueError(f"no Glue type for polars type {dtype}")


def polars_type(glue: str) -> pl.DataType:
    """The polars type the local engine reads a Glue column type as (timestamps as ms, UTC)."""
    text = glue.strip().lower().replace(" ", "")
    if text.startswith("decimal(") and text.endswith(")"):
        precision, scale = text[len("decimal(") : -1].split(",")
        return pl.Decimal(int(precision), int(scale))
    simple: dict[str, pl.DataType] = {
        "bigint": pl.Int64(),
        "int": pl.Int32(),
        "boolean": pl.Boolean(),
        "string": pl.String(),
        "double": pl.Float64(),
        "date": pl.Date(),
        "timestamp": _TIME,
    }
    if text not in simple:
        raise ValueError(f"the local query engine cannot read Glue type {glue!r}")
    return simple[text]


def hive_path(keys: tuple[str, ...], values: tuple[str, ...]) -> str:
    """``symbol=BTCUSDT/date=2024-08-08/hour=23`` for those keys and values."""
    if len(keys) != len(values):
        raise ValueError(f"partition keys {keys} do not match values {values}")
    bad = [v for v in values if not v or "/" in v or "=" in v]
    if bad:
        raise ValueError(f"partition values must be non-empty and free of '/' and '=': {bad}")
    return "/".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def _storage(table: LakeTable, location: str) -> StorageDescriptorTypeDef:
    return {
        "Columns": [_column(name, dtype) for name, dtype in table.columns],
        "Location": location,
        "InputFormat": PARQUET_INPUT,
        "OutputFormat": PARQUET_OUTPUT,
        "Compressed": False,
        "SerdeInfo": {
            "SerializationLibrary": PARQUET_SERDE,
            "Parameters": {"serialization.format": "1"},
        },
        "StoredAsSubDirectories": False,
    }


def _column(name: str, dtype: pl.DataType) -> ColumnTypeDef:
    return {"Name": name, "Type": glue_type(dtype)}


def table_input(table: LakeTable, bucket: str) -> TableInputTypeDef:
    """Glue ``TableInput`` of an external, Hive-partitioned Parquet table."""
    return {
        "Name": table.name,
        "Description": table.description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": TABLE_PARAMETERS,
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in table.partition_keys],
        "StorageDescriptor": _storage(table, table.location(bucket)),
    }


def partition_input(
    table: LakeTable, bucket: str, values: tuple[str, ...]
) -> PartitionInputTypeDef:
    """Glue ``PartitionInput`` of one partition, located at its Hive path under the table."""
    return {
        "Values": list(values),
        "StorageDescriptor": _storage(table, table.partition_location(bucket, values)),
        "Parameters": {},
    }


def table_matches(existing: Mapping[str, Any], desired: TableInputTypeDef) -> bool:
    """Whether a ``GetTable`` answer already has what ``desired`` defines (nothing to update)."""
    have_sd: Mapping[str, Any] = existing.get("StorageDescriptor", {})
    want_sd: Mapping[str, Any] = desired.get("StorageDescriptor", {})

    def columns(cols: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
        return [(str(c["Name"]), str(c["Type"])) for c in cols]

    have_params = existing.get("Parameters", {})
    return (
        columns(have_sd.get("Columns", [])) == columns(want_sd.get("Columns", []))
        and columns(existing.get("PartitionKeys", [])) == columns(desired.get("PartitionKeys", []))
        and have_sd.get("Location") == want_sd.get("Location")
        and have_sd.get("InputFormat") == want_sd.get("InputFormat")
        and have_sd.get("SerdeInfo", {}).get("SerializationLibrary") == PARQUET_SERDE
        and existing.get("TableType") == desired.get("TableType")
        and existing.get("Description") == desired.get("Description")
        and all(have_params.get(k) == v for k, v in desired.get("Parameters", {}).items())
    )


def partition_of_key(table: LakeTable, key: str) -> tuple[str, ...] | None:
    """Partition values of an object key of ``table``, or None when the key is not one of its files.

    ``trades/symbol=BTCUSDT/date=2024-08-08/hour=23/1-9-ab.parquet`` -> ``("BTCUSDT", "2024-08-08", "23")``.
    """
    head = f"{table.prefix}/"
    if not key.startswith(head):
        return None
    parts = key[len(head) :].split("/")
    n = len(table.partition_keys)
    if len(parts) != n + 1 or not parts[-1] or parts[-1].startswith(("_", ".")):
        return None
    values = []
    for name, part in zip(table.partition_keys, parts[:n], strict=True):
        k, sep, v = part.partition("=")
        if k != name or not sep or not v:
            return None
        values.append(v)
    return tuple(values)


def partitions_of_keys(
    tables: Iterable[LakeTable], keys: Iterable[str]
) -> dict[str, set[tuple[str, ...]]]:
    """The partitions each table has files in, by table name; keys of no table are ignored."""
    found: dict[str, set[tuple[str, ...]]] = {}
    tables = list(tables)
    for key in keys:
        for table in tables:
            values = partition_of_key(table, key)
            if values is not None:
                found.setdefault(table.name, set()).add(values)
                break
    return found


def is_aws_endpoint(endpoint_url: str) -> bool:
    """Whether a service endpoint is AWS itself (``https://glue.us-east-1.amazonaws.com``)."""
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def choose_engine(setting: Literal["auto", "athena", "local"], endpoint_url: str) -> Engine:
    """``CANDLEFLOW_QUERY_ENGINE``: auto means Athena on AWS, the local engine on an emulator."""
    if setting == "auto":
        return "athena" if is_aws_endpoint(endpoint_url) else "local"
    return setting
