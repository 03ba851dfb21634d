from __future__ import annotations

import io

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.candles import aggregate
from tasks.core.lake import parquet_frame
from tasks.core.models import Candle, Interval, empty_candle
from tasks.core.rebuild import lake_trades, plan_rebuild
from tasks.core.trades import TRADES_SCHEMA
from tests.builders import BASE_TIME, draw_trade, make_trade, trades_frame

MINUTE = Interval.M1.ms


def keyed(candles: list[Candle], version: int = 3) -> dict[tuple[str, Interval, int], Candle]:
    return {(c.symbol, c.interval, c.open_time): c.with_version(version) for c in candles}


def test_a_stored_subset_is_replaced_by_the_lake_candle_keeping_its_version() -> None:
    trades = trades_frame([make_trade(trade_id=i, price=f"{100 + i}.0") for i in range(1, 6)])
    stored = keyed(aggregate(trades.filter(pl.col("trade_id") != 3)))
    plan = plan_rebuild(trades, stored)
    assert plan.writes == [c.with_version(3) for c in aggregate(trades)]
    assert (plan.unchanged, plan.lake_lacks) == (0, [])
    assert plan_rebuild(trades, keyed(aggregate(trades))).writes == []


def test_trades_the_lake_lacks_are_kept_and_the_minute_is_reported() -> None:
    stored_trades = trades_frame([make_trade(trade_id=i) for i in (1, 2, 3)])
    lake = trades_frame([make_trade(trade_id=i) for i in (2, 3, 4)])
    lone = trades_frame([make_trade(trade_id=9, trade_time=BASE_TIME + 5 * MINUTE)])
    stored = keyed(aggregate(pl.concat([stored_trades, lone])))
    plan = plan_rebuild(lake, stored)
    union = pl.concat([stored_trades, lake]).unique("trade_id")
    assert [c.with_version(0) for c in plan.writes] == aggregate(union)
    assert plan.lake_lacks == [
        ("BTCUSDT", Interval.M1, BASE_TIME + 5 * MINUTE),
        ("BTCUSDT", Interval.M1, BASE_TIME),
    ]


def test_an_empty_kline_where_the_lake_has_trades_is_replaced() -> None:
    trades = trades_frame([make_trade(trade_id=1, trade_time=BASE_TIME + MINUTE)])
    [traded] = aggregate(trades)
    empty = empty_candle("BTCUSDT", Interval.M1, BASE_TIME + MINUTE, traded.close).with_version(2)
    plan = plan_rebuild(trades, {("BTCUSDT", Interval.M1, BASE_TIME + MINUTE): empty})
    assert plan.writes == [traded.with_version(2)]


def test_lake_parquet_rows_read_back_as_the_same_trades() -> None:
    trades = trades_frame([make_trade(trade_id=i, quantity="0.00012345") for i in (7, 8)])
    full = trades.with_columns(
        pl.col("trade_time").mul(1_000_000).alias("ts_event"),
        pl.lit(0, pl.Int64).alias("ts_init"),
        pl.col("trade_time").alias("event_time"),
        pl.lit("{}").alias("raw"),
        pl.lit("m").alias("message_id"),
    ).select(list(TRADES_SCHEMA))
    buffer = io.BytesIO()
    parquet_frame(full).write_parquet(buffer)
    back = lake_trades(pl.read_parquet(io.BytesIO(buffer.getvalue())), "BTCUSDT")
    assert back.equals(trades.select(back.columns))


@st.composite
def split_trades(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n = draw(st.integers(1, 40))
    trades = [
        draw_trade(draw, i, BASE_TIME + draw(st.integers(0, 4)) * MINUTE + i)
        for i in range(1, n + 1)
    ]
    in_stored = [draw(st.booleans()) for _ in trades]
    in_lake = [s or draw(st.booleans()) for s in in_stored]  # the lake holds what candles count
    frame = trades_frame(trades)
    return (
        frame,
        frame.filter(pl.Series(in_stored)),
        frame.filter(pl.Series(in_lake)),
    )


@given(split_trades())
def test_a_rebuild_makes_every_minute_the_aggregate_of_the_lake(
    case: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    _, stored_trades, lake = case
    stored = keyed(aggregate(stored_trades))
    plan = plan_rebuild(lake, stored)
    after = dict(stored)
    for c in plan.writes:
        after[(c.symbol, c.interval, c.open_time)] = c
    assert sorted(
        (c.with_version(0) for c in after.values()), key=lambda c: (c.symbol, c.open_time)
    ) == aggregate(lake)
    assert plan.lake_lacks == []
