"""One resource spec: the names, keys and settings of every AWS resource candleflow uses.

The embedded emulator is provisioned from it (``infra/provision.py``) and the AWS infrastructure code is
generated from it, so names never exist in two places. Pure: built from settings, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.settings import Settings


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    dlq_name: str
    max_receive_count: int
    visibility_timeout_s: int
    retention_s: int = 4 * 86_400
    dlq_retention_s: int = 14 * 86_400


@dataclass(frozen=True, slots=True)
class BucketSpec:
    name: str
    raw_prefix: str = "raw/trades"
    trades_prefix: str = "trades"
    quarantine_prefix: str = "quarantine/trades"
    candles_prefix: str = "candles"
    spreads_prefix: str = "spreads"
    athena_results_prefix: str = "athena-results"


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    partition_key: str = "marketid"
    sort_key: str = "timestamp"


@dataclass(frozen=True, slots=True)
class CatalogSpec:
    """The Glue tables over the lake, the crawler that keeps their partitions on AWS, Athena's workgroup."""

    trades_table: str
    candles_table: str
    spreads_table: str
    crawler: str
    athena_workgroup: str


@dataclass(frozen=True, slots=True)
class AlertsSpec:
    """The SNS topic anomaly alerts go to, the SQS inbox subscribed to it, and people subscribed."""

    topic: str
    inbox_queue: str
    emails: tuple[str, ...] = ()
    sms_numbers: tuple[str, ...] = ()
    inbox_retention_s: int = 14 * 86_400


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    queue: QueueSpec
    bucket: BucketSpec
    table: TableSpec
    alerts: AlertsSpec
    samples_queue: QueueSpec
    glue_database: str
    catalog: CatalogSpec


def resource_spec(settings: Settings) -> ResourceSpec:
    p = settings.prefix
    return ResourceSpec(
        queue=QueueSpec(
            name=f"{p}-trades",
            dlq_name=f"{p}-trades-dlq",
            max_receive_count=settings.max_receive_count,
            visibility_timeout_s=settings.visibility_timeout_s,
        ),
        bucket=BucketSpec(name=settings.bucket),
        table=TableSpec(name=f"{p}-candles"),
        alerts=AlertsSpec(
            topic=f"{p}-alerts",
            inbox_queue=f"{p}-alerts-inbox",
            emails=tuple(settings.alert_emails),
            sms_numbers=tuple(settings.alert_sms_numbers),
        ),
        samples_queue=QueueSpec(
            name=f"{p}-spread-samples",
            dlq_name=f"{p}-spread-samples-dlq",
            max_receive_count=settings.max_receive_count,
            visibility_timeout_s=settings.visibility_timeout_s,
        ),
        glue_database=p.replace("-", "_"),
        catalog=CatalogSpec(
            trades_table="trades",
            candles_table="candles",
            spreads_table="spreads",
            crawler=f"{p}-lake",
            athena_workgroup=p,
        ),
    )
