"""SQL over the lake's Glue tables: on Athena, or on a local engine that reads the same Parquet from S3.

The local engine resolves each table the query names the way Athena does, from the Glue catalog: the
table's columns and types, its registered partitions and their locations. It lists the objects under
those locations, scans them with polars (Hive partition columns read off the paths, so a filter on
``symbol``, ``date`` or ``hour`` skips whole partitions) and runs the query with polars SQL. S3 access
uses the same endpoint and credentials as boto3 (the standard AWS chain), so it reads the moto server,
LocalStack or AWS alike. Both engines answer as text in Athena's formatting (``tasks/core/sql.py``).
"""

from __future__ import annotations

import logging
import re

import polars as pl

from infra.spec import ResourceSpec
from tasks.aws import athena, glue, s3
from tasks.aws.clients import AwsClients
from tasks.core.catalog import Engine, choose_engine, is_aws_endpoint, polars_type
from tasks.core.sql import QueryResult, frame_result, plan_scan, split_s3_url
from tasks.errors import ConfigError, QueryError
from tasks.settings import Settings

log = logging.getLogger(__name__)


def engine_for(settings: Settings, clients: AwsClients) -> Engine:
    return choose_engine(settings.query_engine, clients.glue.meta.endpoint_url)


def run_sql(settings: Settings, spec: ResourceSpec, clients: AwsClients, sql: str) -> QueryResult:
    """Run ``sql`` against the catalog's database on the engine ``CANDLEFLOW_QUERY_ENGINE`` picks."""
    if engine_for(settings, clients) == "athena":
        output = f"s3://{spec.bucket.name}/{spec.bucket.athena_results_prefix}/"
        athena.ensure_workgroup(clients.athena, spec.catalog.athena_workgroup, output)
        return athena.run_query(
            clients.athena,
            sql,
            database=spec.glue_database,
            workgroup=spec.catalog.athena_workgroup,
            output_location=output,
            timeout_s=settings.athena_timeout_s,
        )
    return local_query(clients, spec.glue_database, sql)


def local_query(clients: AwsClients, database: str, sql: str) -> QueryResult:
    """Run ``sql`` with polars SQL over the Glue tables it names."""
    named = [t for t in glue.table_names(clients.glue, database) if _mentions(sql, t)]
    options = storage_options(clients)
    frames = {name: scan_table(clients, database, name, options) for name in named}
    try:
        frame = pl.SQLContext(frames).execute(sql).collect()
    except pl.exceptions.PolarsError as exc:
        known = ", ".join(sorted(frames)) or "none"
        reason = str(exc).split("\n\n")[0]  # polars appends the whole plan
        raise QueryError(f"local engine (tables named: {known}): {reason}") from exc
    return frame_result(frame, "local")


def _mentions(sql: str, table: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(table)}(?!\w)", sql, re.IGNORECASE) is not None


def storage_options(clients: AwsClients) -> dict[str, str]:
    """polars' S3 options from boto3's resolved configuration: the same endpoint and credentials."""
    credentials = clients.session.get_credentials()
    if credentials is None:
        raise ConfigError(
            "no AWS credentials found for reading the lake: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    frozen = credentials.get_frozen_credentials()
    options: dict[str, str] = {
        "aws_access_key_id": str(frozen.access_key),
        "aws_secret_access_key": str(frozen.secret_key),
        "aws_region": clients.region,
    }
    if frozen.token:
        options["aws_session_token"] = frozen.token
    endpoint = clients.s3.meta.endpoint_url
    if not is_aws_endpoint(endpoint):
        options["aws_endpoint_url"] = endpoint
    return options


def scan_table(
    clients: AwsClients, database: str, name: str, options: dict[str, str]
) -> pl.LazyFrame:
    """A lazy scan of a Glue table's registered partitions, columns in Athena's order."""
    table = glue.get_table(clients.glue, database, name)
    schema = {c.name: polars_type(c.type) for c in table.columns}
    hive_schema = {k.name: polars_type(k.type) for k in table.partition_keys}
    order = [*schema, *hive_schema]
    parts = glue.partitions(clients.glue, database, name) if hive_schema else []
    # One listing of the table's location; partitions located elsewhere are listed on their own.
    roots = [
        table.location,
        *(p.location for p in parts if not p.location.startswith(table.location)),
    ]
    urls = sorted({url for root in roots for url in _list(clients, root)})
    plan = plan_scan(
        table.location, tuple(hive_schema), [(p.values, p.location) for p in parts], urls
    )
    log.debug("%s.%s: %d partition file(s) by path", database, name, len(plan.hive_files))
    scans = []
    if plan.hive_files:
        scans.append(_scan(list(plan.hive_files), schema, options, hive_schema).select(order))
    for values, files in plan.located:
        located = [
            pl.lit(v).cast(dtype).alias(k)
            for (k, dtype), v in zip(hive_schema.items(), values, strict=True)
        ]
        scans.append(_scan(list(files), schema, options, None).with_columns(located).select(order))
    if not scans:
        return pl.LazyFrame(schema={**schema, **hive_schema})
    return pl.concat(scans, how="vertical")


def _scan(
    files: list[str],
    schema: dict[str, pl.DataType],
    options: dict[str, str],
    hive_schema: dict[str, pl.DataType] | None,
) -> pl.LazyFrame:
    # Columns are matched by name, as Athena reads Parquet: absent ones are NULL, extra ones unseen.
    return pl.scan_parquet(
        files,
        schema=schema,
        hive_partitioning=hive_schema is not None,
        hive_schema=hive_schema,
        try_parse_hive_dates=False,
        glob=False,
        storage_options=options,
        missing_columns="insert",
        extra_columns="ignore",
    )


def _list(clients: AwsClients, location: str) -> list[str]:
    bucket, prefix = split_s3_url(location)
    if not prefix.endswith("/"):
        prefix += "/"
    return [f"s3://{bucket}/{key}" for key in s3.list_keys(clients.s3, bucket, prefix)]
