"""Prefect tasks of the backfill: fetch missing trades from Binance, and rebuild candles from the lake.

Binance's request weights are spent through a Prefect global rate limit (``binance-rest-weight``,
``CANDLEFLOW_BINANCE_WEIGHT_PER_MINUTE`` slots decaying over a minute), so every backfill running
anywhere against the same Prefect server shares one budget. The pure rebuild logic lives in
``tasks.core.rebuild``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound

from tasks.aws import dynamodb, s3
from tasks.binance_rest import BinanceBanned, BinanceRest
from tasks.candle_writes import KnownMinutes, chunked, in_parallel
from tasks.context import Store
from tasks.core.candles import CandleKey, in_candle
from tasks.core.gaps import Gap
from tasks.core.keys import iso_time, partition_path
from tasks.core.models import Candle, Interval
from tasks.core.rebuild import lake_trades, plan_rebuild
from tasks.core.trades import PRICE
from tasks.errors import ConflictError
from tasks.lake_writes import write_once

RATE_LIMIT = "binance-rest-weight"
MAX_CONFLICT_RETRIES = 20
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class RebuildReport:
    minutes: int = 0
    unchanged: int = 0
    written: tuple[Candle, ...] = field(default=())
    lake_lacks: tuple[CandleKey, ...] = field(default=())
    known: KnownMinutes | None = None  # every 1m candle of the window as stored after the rebuild


def _not_banned(task: object, task_run: object, state: object) -> bool:
    """Retry a failed fetch unless Binance banned the address (418): retrying would extend the ban."""
    try:
        state.result()  # type: ignore[attr-defined]
    except BinanceBanned:
        return False
    except Exception:
        return True
    return True


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def ensure_rate_limit(weight_per_minute: int) -> None:
    """Create or resize the global rate limit Binance requests take their weight from."""
    decay = weight_per_minute / 60
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(RATE_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=RATE_LIMIT, limit=weight_per_minute, slot_decay_per_second=decay
                )
            )
            return
        if current.limit != weight_per_minute or current.slot_decay_per_second != decay:
            client.update_global_concurrency_limit(
                RATE_LIMIT,
                GlobalConcurrencyLimitUpdate(
                    limit=weight_per_minute, slot_decay_per_second=decay, active=True
                ),
            )


def _spend_weight(weight: int) -> None:
    rate_limit(RATE_LIMIT, occupy=weight, strict=True)


@task(
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=[5, 30, 60],
    retry_condition_fn=_not_banned,
)
def fetch_gap_trades(ctx: Store, gaps: list[Gap], max_trades: int) -> pl.DataFrame:
    """The trades of ``gaps`` from Binance REST, oldest gap first, ``max_trades`` at most."""
    logger = get_run_logger()
    settings = ctx.settings
    key = settings.binance_api_key.get_secret_value() if settings.binance_api_key else None
    frames: list[pl.DataFrame] = []
    budget = max_trades
    with BinanceRest(settings.binance_rest_url, api_key=key, before_request=_spend_weight) as api:
        for gap in sorted(gaps, key=lambda g: (g.symbol, g.first_id)):
            if budget <= 0:
                logger.warning(
                    "CANDLEFLOW_GAP_FILL_MAX_TRADES=%d reached: %s ids %d-%d left for the next run",
                    max_trades,
                    gap.symbol,
                    gap.first_id,
                    gap.last_id,
                )
                continue
            last = min(gap.last_id, gap.first_id + budget - 1)
            frame = api.fetch_trades(gap.symbol, gap.first_id, last)
            logger.info(
                "%s: fetched %d trade(s) of gap %d-%d from Binance",
                gap.symbol,
                frame.height,
                gap.first_id,
                gap.last_id,
            )
            frames.append(frame)
            budget -= last - gap.first_id + 1
    return pl.concat(frames) if frames else pl.DataFrame()


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def write_trades(ctx: Store, trades: pl.DataFrame) -> list[str]:
    """Write fetched trades to the lake exactly as the ingest writes live ones; returns the keys."""
    if trades.height == 0:
        return []
    return write_once(ctx.clients, ctx.spec.bucket, trades)


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def read_lake(ctx: Store, symbol: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Every trade the lake's Parquet holds for ``symbol`` timed in ``start_ms..end_ms``."""
    bucket = ctx.spec.bucket
    hours = range(start_ms - start_ms % HOUR_MS, end_ms + 1, HOUR_MS)
    keys = [
        k
        for hour in hours
        for k in s3.list_keys(
            ctx.clients.s3,
            bucket.name,
            f"{bucket.trades_prefix}/{partition_path(symbol, hour)}/",
        )
        if k.endswith(".parquet")
    ]

    def load(key: str) -> pl.DataFrame:
        body = s3.get(ctx.clients.s3, bucket.name, key)
        return lake_trades(pl.read_parquet(io.BytesIO(body)), symbol)

    frames = in_parallel(load, keys)
    if not frames:
        return _empty_trades()
    t = pl.col("trade_time")
    return pl.concat(frames).filter((t >= start_ms) & (t <= end_ms))


def _empty_trades() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "symbol": pl.String,
            "trade_id": pl.Int64,
            "price": PRICE,
            "quantity": PRICE,
            "is_buyer_maker": pl.Boolean,
            "trade_time": pl.Int64,
        }
    )


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def rebuild_candles(
    ctx: Store, symbol: str, start_ms: int, end_ms: int, trades: pl.DataFrame
) -> RebuildReport:
    """Make the stored 1m candles of the window equal what the lake's trades say: versioned writes,
    up to 100 per transaction; a transaction a concurrent write cancelled is redone minute by minute."""
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    stored = {
        (c.symbol, c.interval, c.open_time): c
        for c in dynamodb.query_candles(client, table, symbol, Interval.M1, start_ms, end_ms)
    }
    plan = plan_rebuild(trades, stored)

    def write(candle: Candle) -> Candle:
        key = (candle.symbol, candle.interval, candle.open_time)
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                return dynamodb.put_candle(client, table, candle)
            except ConflictError:
                # The ingest changed the minute meanwhile: plan it again from the fresh item.
                fresh = dynamodb.get_candles(client, table, [key])
                again = plan_rebuild(in_candle(trades, key), fresh).writes
                if not again:
                    return fresh[key]
                candle = again[0]
        raise ConflictError(
            f"gave up on {symbol} {iso_time(key[2])} after {MAX_CONFLICT_RETRIES} conflicting writes"
        )

    def write_chunk(chunk: Sequence[Candle]) -> list[Candle]:
        try:
            return dynamodb.put_candles(client, table, chunk)
        except ConflictError:  # a minute changed since it was read: each one re-planned alone
            return [write(candle) for candle in chunk]

    chunks = chunked(plan.writes, dynamodb.TRANSACTION_ITEMS)
    written = [c for done in in_parallel(write_chunk, chunks) for c in done]
    if plan.lake_lacks:
        get_run_logger().warning(
            "%s: the lake lacks trades that %d stored candle(s) count (first: %s); kept them as "
            "stored. Were lake objects deleted?",
            symbol,
            len(plan.lake_lacks),
            iso_time(plan.lake_lacks[0][2]),
        )
    after = {c.open_time: c for c in [*stored.values(), *written]}
    return RebuildReport(
        len(plan.writes) + plan.unchanged,
        plan.unchanged,
        tuple(written),
        tuple(plan.lake_lacks),
        KnownMinutes(symbol, start_ms, end_ms, tuple(after.values())),
    )
