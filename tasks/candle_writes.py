"""Prefect tasks that write candles, shared by the ingest and the backfill: empty klines, dirty marks.

Also ``in_parallel``, the thread pool the flows run their independent AWS calls on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aws import dynamodb
from tasks.context import Store
from tasks.core.candles import plan_empty_fill
from tasks.core.models import Candle, Interval
from tasks.errors import ConflictError

# The independent AWS calls of a batch (S3 puts, candle writes, deletes) run on this many threads:
# boto3 clients are thread-safe, the calls mostly wait on the network, and zlib, hashlib and polars
# release the GIL while they build lake objects.
AWS_THREADS = 8

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(i) for i in items]`` on up to ``AWS_THREADS`` threads; the first error propagates."""
    if len(items) < 2:
        return [fn(i) for i in items]
    workers = min(AWS_THREADS, len(items))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aws") as pool:
        return list(pool.map(fn, items))


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def fill_empty_candles(ctx: Store, written: list[Candle]) -> list[Candle]:
    """Write Binance's empty klines for minutes without trades between traded ones; returns them."""
    logger = get_run_logger()
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    limit = ctx.settings.max_empty_fill_minutes

    def fill(symbol: str) -> list[Candle]:
        touched = [c.open_time for c in written if c.symbol == symbol]
        lo, hi = min(touched), max(touched)
        window = list(
            dynamodb.query_candles(
                client,
                table,
                symbol,
                Interval.M1,
                end_ms=lo - 1,
                descending=True,
                limit=1,
            )
        )
        window += dynamodb.query_candles(client, table, symbol, Interval.M1, lo, hi)
        for candle in dynamodb.query_candles(
            client, table, symbol, Interval.M1, start_ms=hi + Interval.M1.ms
        ):
            window.append(candle)
            if not candle.is_empty or len(window) > limit + 2:
                break
        writes, skipped = plan_empty_fill(window, limit)
        if skipped:
            logger.warning(
                "%s: %d minute(s) without trades left without empty klines: the run is longer than "
                "CANDLEFLOW_MAX_EMPTY_FILL_MINUTES=%d",
                symbol,
                skipped,
                limit,
            )
        done: list[Candle] = []
        for candle in writes:
            try:
                done.append(dynamodb.put_candle(client, table, candle))
            except ConflictError:
                logger.debug(
                    "empty kline %s %d changed meanwhile; left to the writer",
                    symbol,
                    candle.open_time,
                )
        return done

    return [c for done in in_parallel(fill, sorted({c.symbol for c in written})) for c in done]


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def mark_rollups_dirty(
    ctx: Store, written: list[Candle], stored: dict[dynamodb.CandleKey, Candle]
) -> int:
    """Mark the hours (and so days) of every minute the batch touched for the next rollup.

    ``stored`` counts too: after a crash between the candle writes and this mark, the redelivered
    batch writes nothing new, and only the stored candles still name the hours to mark.
    """
    return dynamodb.mark_dirty(
        ctx.clients.dynamodb, ctx.spec.table.name, [*written, *stored.values()]
    )
