from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from functools import cache

import polars as pl
import pytest

from flows.rollup_candles import rollup_candles
from infra.spec import resource_spec
from tasks.aws import dynamodb
from tasks.core.candles import aggregate, exclude_known, merge, plan_empty_fill
from tasks.core.models import Candle, Interval
from tasks.rollup import RollupContext, RollupReport, _SymbolRoller
from tests.builders import BASE_TIME, Trade, capture_trades, trades_frame
from tests.conftest import AwsEnv

HOUR = Interval.H1.ms
DAY_0808 = Interval.D1.floor(BASE_TIME)


@pytest.fixture
def env(aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_SYMBOLS", "BTCUSDT")
    return aws


@cache
def btc_capture() -> pl.DataFrame:
    """2024-08-08 23:54 .. 2024-08-09 00:05 UTC: two hours, two days."""
    return trades_frame(capture_trades("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"))


def ingest(aws: AwsEnv, trades: pl.DataFrame) -> list[Candle]:
    """What the ingest does with new trades: merge into the 1m candles, empty klines, mark dirty."""
    client, table = aws.clients.dynamodb, aws.spec.table.name
    stored = {(c.symbol, c.open_time): c for c in stored_candles(aws, Interval.M1)}
    written = []
    for part in aggregate(exclude_known(trades, stored.values())):
        existing = stored.get((part.symbol, part.open_time))
        written.append(dynamodb.put_candle(client, table, merge(existing, part)))
        stored[(part.symbol, part.open_time)] = written[-1]
    fills, _ = plan_empty_fill(list(stored.values()), limit=10_000)
    for fill in fills:
        dynamodb.put_candle(client, table, fill)
    dynamodb.mark_dirty(client, table, written)
    return written


def stored_candles(aws: AwsEnv, interval: Interval, symbol: str = "BTCUSDT") -> list[Candle]:
    return list(dynamodb.query_candles(aws.clients.dynamodb, aws.spec.table.name, symbol, interval))


def assert_stored_equal_direct_aggregation(aws: AwsEnv, trades: pl.DataFrame) -> None:
    for interval in (Interval.H1, Interval.D1):
        got = [c.with_version(0) for c in stored_candles(aws, interval)]
        assert got == aggregate(trades, interval), interval


def markers_left(aws: AwsEnv) -> int:
    return sum(
        len(dynamodb.dirty_markers(aws.clients.dynamodb, aws.spec.table.name, interval))
        for interval in (Interval.H1, Interval.D1)
    )


def test_hours_and_days_equal_the_trades_aggregated_straight_into_them_even_after_a_late_trade(
    env: AwsEnv,
) -> None:
    trades = btc_capture()
    ingest(env, trades)
    report = rollup_candles("1h")  # the scheduled run: trailing window (empty) + dirty hours
    assert isinstance(report, RollupReport)
    assert [(c.interval, c.open_time) for c in report.written] == [
        (Interval.H1, DAY_0808 + 23 * HOUR),
        (Interval.H1, DAY_0808 + 24 * HOUR),
        (Interval.D1, DAY_0808),  # the 1h run keeps the days current too
        (Interval.D1, DAY_0808 + 24 * HOUR),
    ]
    assert report.markers_cleared == 4 and markers_left(env) == 0
    assert_stored_equal_direct_aggregation(env, trades)
    # The daily run then finds both days current and writes nothing.
    daily = rollup_candles("1d", start="2024-08-08T00:00:00Z", end="2024-08-09T12:00:00Z")
    assert (daily.checked, daily.unchanged, daily.written) == (2, 2, ())

    # A late trade for 23:58 with the highest id of the day: new high and close of 23:00 and 08-08.
    late = Trade(trade_id=3_800_000_000, price="70000.00", trade_time=BASE_TIME + 3 * 60_000)
    ingest(env, trades_frame([late]))
    again = rollup_candles("1h")
    assert [(c.interval, c.open_time, c.close) for c in again.written] == [
        (Interval.H1, DAY_0808 + 23 * HOUR, Decimal("70000")),
        (Interval.D1, DAY_0808, Decimal("70000")),
    ]
    assert_stored_equal_direct_aggregation(env, pl.concat([trades, trades_frame([late])]))
    assert markers_left(env) == 0


def test_a_changed_close_travels_through_the_empty_hours_after_it(env: AwsEnv) -> None:
    ten = DAY_0808 + 10 * HOUR
    ingest(
        env,
        trades_frame(
            [
                Trade(trade_id=1, price="10", trade_time=ten + 58 * 60_000),
                Trade(trade_id=5, price="13", trade_time=ten + 3 * HOUR),
            ]
        ),
    )
    first = rollup_candles("1h")
    assert [(c.open_time, c.trade_count, c.close) for c in first.written[:4]] == [
        (ten, 1, Decimal(10)),
        (ten + HOUR, 0, Decimal(10)),  # hours 11 and 12 only hold empty 1m klines
        (ten + 2 * HOUR, 0, Decimal(10)),
        (ten + 3 * HOUR, 1, Decimal(13)),
    ]
    # A late trade closes hour 10 at 11: only that minute is marked dirty, yet hours 11 and 12
    # (empty klines carrying the previous close) must follow.
    ingest(env, trades_frame([Trade(trade_id=2, price="11", trade_time=ten + 59 * 60_000)]))
    second = rollup_candles("1h")
    assert [(c.interval, c.open_time, c.close) for c in second.written] == [
        (Interval.H1, ten, Decimal(11)),
        (Interval.H1, ten + HOUR, Decimal(11)),
        (Interval.H1, ten + 2 * HOUR, Decimal(11)),
        (Interval.D1, DAY_0808, Decimal(13)),
    ]
    [day] = stored_candles(env, Interval.D1)
    assert (day.trade_count, day.high, day.low) == (3, Decimal(13), Decimal(10))


def test_an_explicit_window_re_rolls_exactly_its_intervals(env: AwsEnv) -> None:
    ingest(env, btc_capture())
    only_2300 = rollup_candles("1h", start="2024-08-08T23:10:00Z", end="2024-08-08T23:59:00Z")
    assert [(c.interval, c.open_time) for c in only_2300.written] == [
        (Interval.H1, DAY_0808 + 23 * HOUR),
        (Interval.D1, DAY_0808),
    ]
    # The dirty marker of hour 00:00 lies outside the window: still there for the next run.
    [left] = dynamodb.dirty_markers(env.clients.dynamodb, env.spec.table.name, Interval.H1)
    assert left.open_time == DAY_0808 + 24 * HOUR


def test_a_parent_written_meanwhile_by_another_run_is_recomputed_not_overwritten(
    aws: AwsEnv,
) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    trades = trades_frame([Trade(trade_id=i, trade_time=BASE_TIME + i) for i in (1, 2)])
    ingest(aws, trades)
    [hour] = aggregate(trades, Interval.H1)
    roller = _SymbolRoller(
        RollupContext(aws.settings, resource_spec(aws.settings).table.name, aws.clients),
        "BTCUSDT",
        Interval.H1,
    )
    roller.prefetch([hour.open_time])  # reads "not stored yet"
    dynamodb.put_candle(client, table, replace(hour, volume=Decimal(99)))  # another run, stale
    assert roller.roll(hour.open_time) is True  # conflict -> re-read -> recompute -> write
    [stored] = stored_candles(aws, Interval.H1)
    assert (stored.with_version(0), stored.version) == (hour, 2)
    assert roller.roll(hour.open_time) is False  # now current
