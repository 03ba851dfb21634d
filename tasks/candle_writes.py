"""Prefect tasks that write candles, shared by the ingest and the backfill: empty klines, dirty marks.

Also ``in_parallel``, the thread pool the flows run their independent AWS calls on, and
``chunked``, which cuts a list into the requests of a batch API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last one shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class KnownMinutes:
    """Every stored 1m candle of ``symbol`` from ``start_ms`` to ``end_ms`` (a minute not in
    ``candles`` has none), as a step that just read and wrote them knows them: the empty fill then
    needs no second read of the window. Its writes stay conditional, so a candle another writer
    changed meanwhile is left to that writer, as with a read."""

    symbol: str
    start_ms: int
    end_ms: int
    candles: tuple[Candle, ...]

    def between(self, symbol: str, lo: int, hi: int) -> list[Candle] | None:
        """The candles from ``lo`` to ``hi`` in time order, or None when this does not cover them."""
        if symbol != self.symbol or lo < self.start_ms or hi > self.end_ms:
            return None
        return sorted(
            (c for c in self.candles if lo <= c.open_time <= hi), key=lambda c: c.open_time
        )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def fill_empty_candles(
    ctx: Store, written: list[Candle], known: KnownMinutes | None = None
) -> list[Candle]:
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
        inside = known.between(symbol, lo, hi) if known is not None else None
        if inside is None:
            inside = list(dynamodb.query_candles(client, table, symbol, Interval.M1, lo, hi))
        window += inside
        # Small pages: usually the next minute ends the walk (after a backfilled day, a whole 1 MB
        # page of later minutes would be read for nothing).
        for candle in dynamodb.query_candles(
            client, table, symbol, Interval.M1, start_ms=hi + Interval.M1.ms, page=10
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
