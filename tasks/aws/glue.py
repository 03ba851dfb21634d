"""Glue adapter: the lake's tables, their partitions and the crawler.

Partitions are registered through the API as soon as their objects exist (``add_partitions``), so the
catalog never waits for a crawler; on AWS a crawler over the same tables is a second, slower net.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tasks.aws._errors import translate
from tasks.core.catalog import table_matches
from tasks.errors import AwsError, ResourceMissing

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_glue.type_defs import (
        CrawlerTargetsTypeDef,
        PartitionInputTypeDef,
        SchemaChangePolicyTypeDef,
        TableInputTypeDef,
    )

log = logging.getLogger(__name__)

BATCH_CREATE_MAX = 100  # BatchCreatePartition takes at most 100 partitions per call


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    location: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Partition:
    values: tuple[str, ...]
    location: str


def ensure_table(
    client: GlueClient, database: str, table: TableInputTypeDef
) -> Literal["created", "updated", "unchanged"]:
    """Create the table, or update it when its definition differs from ``table``."""
    name = table["Name"]
    try:
        with translate("glue", "GetTable", f"Glue table {database}.{name}"):
            existing = client.get_table(DatabaseName=database, Name=name)["Table"]
    except ResourceMissing:
        try:
            with translate("glue", "CreateTable", f"Glue database {database}"):
                client.create_table(DatabaseName=database, TableInput=table)
        except AwsError as exc:
            if exc.code != "AlreadyExistsException":
                raise
            # Another worker created it from the same spec between our read and our create.
            return "unchanged"
        log.info("created Glue table %s.%s", database, name)
        return "created"
    if table_matches(existing, table):
        return "unchanged"
    with translate("glue", "UpdateTable", f"{database}.{name}"):
        client.update_table(DatabaseName=database, TableInput=table)
    log.info("updated Glue table %s.%s", database, name)
    return "updated"


def get_table(client: GlueClient, database: str, name: str) -> Table:
    with translate("glue", "GetTable", f"Glue table {database}.{name}"):
        found = client.get_table(DatabaseName=database, Name=name)["Table"]
    sd = found.get("StorageDescriptor", {})
    return Table(
        found["Name"],
        sd.get("Location", ""),
        tuple(Column(c["Name"], c.get("Type", "string")) for c in sd.get("Columns", [])),
        tuple(Column(c["Name"], c.get("Type", "string")) for c in found.get("PartitionKeys", [])),
    )


def table_names(client: GlueClient, database: str) -> list[str]:
    names: list[str] = []
    with translate("glue", "GetTables", f"Glue database {database}"):
        for page in client.get_paginator("get_tables").paginate(DatabaseName=database):
            names += [t["Name"] for t in page["TableList"]]
    return names


def partitions(client: GlueClient, database: str, table: str) -> list[Partition]:
    found: list[Partition] = []
    with translate("glue", "GetPartitions", f"Glue table {database}.{table}"):
        pages = client.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=table
        )
        for page in pages:
            found += [
                Partition(tuple(p["Values"]), p.get("StorageDescriptor", {}).get("Location", ""))
                for p in page["Partitions"]
            ]
    return found


def add_partitions(
    client: GlueClient, database: str, table: str, inputs: Sequence[PartitionInputTypeDef]
) -> int:
    """Register partitions; ones that already exist are fine. Returns how many were new."""
    created = 0
    for start in range(0, len(inputs), BATCH_CREATE_MAX):
        chunk = inputs[start : start + BATCH_CREATE_MAX]
        with translate("glue", "BatchCreatePartition", f"Glue table {database}.{table}"):
            errors = client.batch_create_partition(
                DatabaseName=database, TableName=table, PartitionInputList=chunk
            ).get("Errors", [])
        # Registering a partition twice is the normal case (every batch of an hour names it).
        failed = [e for e in errors if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"]
        if failed:
            detail = failed[0]["ErrorDetail"]
            raise AwsError(
                "glue",
                "BatchCreatePartition",
                detail["ErrorCode"],
                f"{len(failed)} partition(s) of {database}.{table}, e.g. "
                f"{failed[0].get('PartitionValues')}: {detail.get('ErrorMessage', '')}",
            )
        created += len(chunk) - len(errors)
    return created


def ensure_crawler(
    client: GlueClient, name: str, role: str, database: str, tables: Iterable[str]
) -> Literal["created", "updated", "unchanged"]:
    """A crawler over the catalog's own tables: it only adds partitions, never tables or columns."""
    targets: CrawlerTargetsTypeDef = {
        "CatalogTargets": [{"DatabaseName": database, "Tables": list(tables)}]
    }
    # Catalog targets require LOG for both behaviours; the table definitions stay ours.
    policy: SchemaChangePolicyTypeDef = {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}
    configuration = (
        '{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"}}}'
    )
    crawler: Any = {
        "Name": name,
        "Role": role,
        "Targets": targets,
        "SchemaChangePolicy": policy,
        "Configuration": configuration,
    }
    try:
        with translate("glue", "GetCrawler", f"Glue crawler {name}"):
            existing = client.get_crawler(Name=name)["Crawler"]
    except ResourceMissing:
        with translate("glue", "CreateCrawler", name):
            client.create_crawler(**crawler)
        log.info("created Glue crawler %s", name)
        return "created"
    same = (
        existing.get("Role") == role
        and existing.get("Targets", {}).get("CatalogTargets") == targets["CatalogTargets"]
        and existing.get("SchemaChangePolicy") == policy
        and json.loads(existing.get("Configuration") or "{}") == json.loads(configuration)
    )
    if same:
        return "unchanged"
    with translate("glue", "UpdateCrawler", name):
        client.update_crawler(**crawler)
    log.info("updated Glue crawler %s", name)
    return "updated"


def start_crawler(client: GlueClient, name: str) -> bool:
    """Start the crawler; False when it is still running from the last start (nothing to do)."""
    try:
        with translate("glue", "StartCrawler", f"Glue crawler {name}"):
            client.start_crawler(Name=name)
    except AwsError as exc:
        if exc.code == "CrawlerRunningException":
            return False
        raise
    return True
