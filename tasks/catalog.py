"""Prefect tasks keeping the Glue catalog current with the lake, and writing candles into the lake.

``register_partitions`` and ``export_candles`` take any ``Store`` context (the ingest's
``IngestContext`` is one), so the ingest registers the partitions of what it just wrote and the
catalog never lags; the ``update-catalog`` flow is the periodic sweep that catches anything missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aws import dynamodb, glue, s3
from tasks.candle_writes import in_parallel
from tasks.context import Store, StoreContext
from tasks.core.candle_lake import CandleSpan, candle_object, span_ms, span_of
from tasks.core.catalog import (
    LakeTable,
    is_aws_endpoint,
    lake_tables,
    partition_input,
    partitions_of_keys,
    table_input,
)
from tasks.core.models import Candle, Interval
from tasks.core.rollup import consecutive_runs
from tasks.errors import ResourceMissing

Partitions = dict[str, set[tuple[str, ...]]]
SPANS_PER_READ = 24  # a day of 1m spans (1,440 candles) per query


@dataclass(frozen=True)
class CatalogReport:
    tables: dict[str, str] = field(default_factory=dict)
    lake_partitions: dict[str, int] = field(default_factory=dict)
    added_partitions: dict[str, int] = field(default_factory=dict)
    crawler: str = ""

    def markdown(self) -> str:
        rows = "\n".join(
            f"| `{name}` | {state} | {self.lake_partitions.get(name, 0)} | "
            f"{self.added_partitions.get(name, 0)} |"
            for name, state in sorted(self.tables.items())
        )
        return (
            "**update-catalog**\n\n| table | definition | partitions in the lake | newly registered |\n"
            f"| --- | --- | ---: | ---: |\n{rows}\n\ncrawler: {self.crawler}"
        )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def ensure_tables(ctx: Store) -> dict[str, str]:
    """Create or update the lake's Glue tables from the spec; returns each table's state."""
    return {
        t.name: glue.ensure_table(
            ctx.clients.glue, ctx.spec.glue_database, table_input(t, ctx.spec.bucket.name)
        )
        for t in lake_tables(ctx.spec)
    }


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def lake_partitions(ctx: Store) -> Partitions:
    """Every partition that holds at least one object in the lake, by table."""
    found: Partitions = {}
    for table in lake_tables(ctx.spec):
        keys = s3.list_keys(ctx.clients.s3, ctx.spec.bucket.name, f"{table.prefix}/")
        found.update(partitions_of_keys([table], keys))
    return found


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def add_missing_partitions(ctx: Store, found: Partitions) -> dict[str, int]:
    """Register the partitions Glue does not list yet; returns how many each table gained."""
    added: dict[str, int] = {}
    for table in lake_tables(ctx.spec):
        known = {
            p.values for p in glue.partitions(ctx.clients.glue, ctx.spec.glue_database, table.name)
        }
        added[table.name] = _add(ctx, table, found.get(table.name, set()) - known)
    return added


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def register_partitions(ctx: Store, keys: Iterable[str]) -> int:
    """Register the partitions of objects just written (any lake keys; others are ignored).

    Idempotent and cheap: one ``BatchCreatePartition`` per table touched, existing partitions are fine.
    Creates the tables first if they do not exist yet.
    """
    return _register(ctx, keys)


def _register(ctx: Store, keys: Iterable[str]) -> int:
    found = partitions_of_keys(lake_tables(ctx.spec), keys)
    return sum(_add(ctx, t, found.get(t.name, set())) for t in lake_tables(ctx.spec))


def _add(ctx: Store, table: LakeTable, values: set[tuple[str, ...]]) -> int:
    if not values:
        return 0
    bucket, database = ctx.spec.bucket.name, ctx.spec.glue_database
    inputs = [partition_input(table, bucket, v) for v in sorted(values)]
    try:
        return glue.add_partitions(ctx.clients.glue, database, table.name, inputs)
    except ResourceMissing:
        glue.ensure_table(ctx.clients.glue, database, table_input(table, bucket))
        return glue.add_partitions(ctx.clients.glue, database, table.name, inputs)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def export_candles(ctx: Store, spans: Iterable[CandleSpan]) -> list[str]:
    """Rebuild the lake objects of these candle spans from DynamoDB and register their partitions.

    Call it with ``candle_spans(written)`` after candles are upserted: each span's object is read back
    whole and rewritten at the same key, so late trades and re-rolls replace the old object. Adjacent
    spans of a market are read in one query (a backfilled day: one query, not 24).
    """
    spec, clients = ctx.spec, ctx.clients
    runs = [
        [CandleSpan(symbol, interval, t) for t in run]
        for (symbol, interval), starts in _starts_by_market(spans).items()
        for run in consecutive_runs(starts, span_ms(interval), SPANS_PER_READ)
    ]

    def read(run: list[CandleSpan]) -> list[tuple[CandleSpan, list[Candle]]]:
        first, last = run[0], run[-1]
        found: dict[int, list[Candle]] = {span.start_ms: [] for span in run}
        for candle in dynamodb.query_candles(
            clients.dynamodb,
            spec.table.name,
            first.symbol,
            first.interval,
            first.start_ms,
            last.last_open_time,
        ):
            found[span_of(candle.symbol, candle.interval, candle.open_time).start_ms].append(candle)
        return [(span, found[span.start_ms]) for span in run if found[span.start_ms]]

    def put(span_candles: tuple[CandleSpan, list[Candle]]) -> str:
        span, candles = span_candles
        obj = candle_object(spec.bucket.candles_prefix, span, candles)
        s3.put(clients.s3, spec.bucket.name, obj.key, obj.body, obj.content_type)
        return obj.key

    # Queries and S3 puts mostly wait on the network: on threads.
    keys = in_parallel(put, [pair for pairs in in_parallel(read, runs) for pair in pairs])
    _register(ctx, keys)
    return keys


def _starts_by_market(spans: Iterable[CandleSpan]) -> dict[tuple[str, Interval], list[int]]:
    starts: dict[tuple[str, Interval], set[int]] = {}
    for span in spans:
        starts.setdefault((span.symbol, span.interval), set()).add(span.start_ms)
    return {market: sorted(times) for market, times in starts.items()}


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def start_crawler(ctx: StoreContext) -> str:
    """On AWS: ensure the crawler (when a role is set) and start it. Elsewhere: nothing to do."""
    logger = get_run_logger()
    glue_client, spec = ctx.clients.glue, ctx.spec
    if not is_aws_endpoint(glue_client.meta.endpoint_url):
        return "not started: not on AWS (partitions are registered through the Glue API)"
    role = ctx.settings.glue_crawler_role
    if role is None:
        # The deployed stack (infra/cdk) owns the crawler and runs it on its own daily schedule:
        # partitions are registered through the Glue API per batch, and crawls bill by the minute.
        return "not started: the crawler is not managed here (set CANDLEFLOW_GLUE_CRAWLER_ROLE)"
    tables = [t.name for t in lake_tables(spec)]
    glue.ensure_crawler(glue_client, spec.catalog.crawler, role, spec.glue_database, tables)
    try:
        started = glue.start_crawler(glue_client, spec.catalog.crawler)
    except ResourceMissing:
        logger.warning("the Glue crawler %s vanished after it was ensured", spec.catalog.crawler)
        return "not started: no crawler"
    return f"{spec.catalog.crawler} started" if started else f"{spec.catalog.crawler} still running"
