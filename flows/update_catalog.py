"""update-catalog: keep the Glue tables over the lake current, so Athena and the local engine see new data.

Ensure the trades and candles tables -> list the partitions the lake holds -> register the ones Glue
lacks -> on AWS, start the crawler. The ingest registers partitions as it writes them; this scheduled
sweep catches anything a crashed run left unregistered.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from tasks.catalog import (
    CatalogReport,
    add_missing_partitions,
    ensure_tables,
    lake_partitions,
    start_crawler,
)
from tasks.context import store_context
from tasks.settings import Settings


@flow(name="update-catalog")
def update_catalog() -> CatalogReport:
    logger = get_run_logger()
    ctx = store_context(Settings())
    tables = ensure_tables(ctx)
    found = lake_partitions(ctx)
    added = add_missing_partitions(ctx, found)
    crawler = start_crawler(ctx)
    report = CatalogReport(tables, {t: len(v) for t, v in found.items()}, added, crawler)
    logger.info("catalog: tables %s, new partitions %s; %s", tables, added, crawler)
    create_markdown_artifact(
        key="catalog-report", markdown=report.markdown(), description="catalog"
    )
    return report
