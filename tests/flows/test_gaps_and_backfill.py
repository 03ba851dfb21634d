"""detect-gaps and backfill on the moto server, with Binance REST served by the loopback fake."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import cache

import polars as pl
import pytest
from prefect.client.orchestration import get_client

from flows.backfill import backfill
from flows.detect_gaps import detect_gaps
from flows.rollup_candles import rollup_candles
from tasks.aws import dynamodb, gap_records, s3
from tasks.backfill import RATE_LIMIT
from tasks.core.gaps import is_incomplete
from tasks.core.keys import iso_millis
from tasks.core.models import Candle, Interval
from tasks.query import run_sql
from tests.builders import Trade, capture_trades, kline, reference_candles
from tests.conftest import AwsEnv
from tests.fakes.binance_rest import FakeBinanceRest
from tests.flows.test_ingest_trades import run_ingest, send_lines

BTC = ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")


@cache
def btc() -> list[Trade]:
    return capture_trades(*BTC)


def without(trades: list[Trade], lo_index: int, hi_index: int) -> tuple[list[Trade], int, int]:
    """The trades with a block of ids cut out (a simulated outage), and the block's ids."""
    lo, hi = trades[lo_index].trade_id, trades[hi_index].trade_id
    return [t for t in trades if not lo <= t.trade_id <= hi], lo, hi


@pytest.fixture
def rest() -> Iterator[FakeBinanceRest]:
    with FakeBinanceRest(btc()) as fake:
        yield fake


@pytest.fixture
def env(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, rest: FakeBinanceRest
) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_SYMBOLS", "BTCUSDT")
    monkeypatch.setenv("CANDLEFLOW_BINANCE_REST_URL", rest.url)
    return aws


def ingest(env: AwsEnv, trades: list[Trade], monkeypatch: pytest.MonkeyPatch) -> None:
    send_lines(env, [[t.line() for t in trades[i : i + 2000]] for i in range(0, len(trades), 2000)])
    run_ingest(env, monkeypatch)


def roll_up_capture() -> None:
    """What the hourly and daily schedules would have done over the capture's two hours."""
    rollup_candles("1h", "2024-08-08T23:00:00Z", "2024-08-09T00:59:59Z")


def stored(env: AwsEnv, interval: Interval) -> dict[int, Candle]:
    return {
        c.open_time: c
        for c in dynamodb.query_candles(
            env.clients.dynamodb, env.spec.table.name, "BTCUSDT", interval
        )
    }


def assert_every_interval_equals(env: AwsEnv, trades: list[Trade]) -> None:
    for interval in Interval:
        expected = reference_candles(trades, interval.ms)
        got = stored(env, interval)
        assert sorted(got) == sorted(t for _, t in expected), interval
        for (_, t), ref in expected.items():
            assert kline(got[t]) == kline(ref), (interval, iso_millis(t))


def lake_ids(env: AwsEnv) -> pl.Series:
    bucket = env.spec.bucket
    keys = [
        k
        for k in s3.list_keys(env.clients.s3, bucket.name, f"{bucket.trades_prefix}/")
        if k.endswith(".parquet")
    ]
    frames = [pl.read_parquet(io.BytesIO(s3.get(env.clients.s3, bucket.name, k))) for k in keys]
    return pl.concat(frames).get_column("trade_id").sort()


def test_a_gap_is_recorded_marked_and_filled_by_a_backfill_that_can_run_twice(
    env: AwsEnv, rest: FakeBinanceRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = btc()
    cut, lo, hi = without(trades, 4000, 4999)
    ingest(env, cut, monkeypatch)
    roll_up_capture()

    report = detect_gaps(fill=False)
    [gap] = report.found
    assert (gap.first_id, gap.last_id) == (lo, hi)
    assert [r.gap for r in report.open] == [gap]
    missing_times = [t.trade_time for t in trades if lo <= t.trade_id <= hi]
    assert gap.start_ms <= min(missing_times) and max(missing_times) <= gap.end_ms
    incomplete = sorted(t for t, c in stored(env, Interval.M1).items() if is_incomplete(c, [gap]))
    assert incomplete == list(range(gap.start_ms, gap.end_ms, Interval.M1.ms))
    assert detect_gaps(fill=False).found == ()  # reported once

    first = backfill(iso_millis(gap.start_ms), iso_millis(gap.end_ms))
    assert first.fetched == {"BTCUSDT": hi - lo + 1}
    assert first.still_open == 0
    assert_every_interval_equals(env, trades)
    [record] = gap_records.records(env.clients.dynamodb, env.spec.table.name, "BTCUSDT")
    assert not record.is_open and record.gap == gap
    ids = lake_ids(env)
    assert ids.len() == ids.n_unique() == len(trades)  # every trade in the lake exactly once
    # The lake's candles (written by the ingest, the rollups and the backfill) agree through SQL.
    sql = (
        'SELECT "interval", count(*) AS n, sum(trade_count) AS trades FROM candles '
        'GROUP BY "interval" ORDER BY "interval"'
    )
    got = run_sql(env.settings, env.spec, env.clients, sql).records()
    assert got == [
        {"interval": i.value, "n": str(len(stored(env, i))), "trades": str(len(trades))}
        for i in sorted(Interval, key=lambda i: i.value)
    ]
    fetches = [r for r in rest.requests if r.path == "/api/v3/historicalTrades"]
    assert fetches[0].params["fromId"] == str(lo)
    assert sum(int(r.params["limit"]) for r in fetches) >= hi - lo + 1

    before = {i: stored(env, i) for i in Interval}
    again = backfill(iso_millis(gap.start_ms), iso_millis(gap.end_ms))
    assert again.fetched == {} and sum(again.written.values()) == 0
    assert {i: stored(env, i) for i in Interval} == before  # versions included: nothing rewritten
    assert len([r for r in rest.requests if r.path == "/api/v3/historicalTrades"]) == len(fetches)

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(RATE_LIMIT)
    assert limit.limit == env.settings.binance_weight_per_minute
    assert limit.slot_decay_per_second == pytest.approx(limit.limit / 60)


def test_detect_gaps_fills_gaps_by_itself_and_late_trades_close_a_gap_without_binance(
    env: AwsEnv, rest: FakeBinanceRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = btc()
    cut, lo, hi = without(trades, 1000, 1099)
    cut, lo2, hi2 = without(cut, 9000, 9019)
    late = [t for t in trades if lo2 <= t.trade_id <= hi2]
    ingest(env, cut, monkeypatch)
    roll_up_capture()
    first = detect_gaps(fill=False)
    assert sorted((g.first_id, g.last_id) for g in first.found) == [(lo, hi), (lo2, hi2)]

    ingest(env, late, monkeypatch)  # the lost message turns up after all
    report = detect_gaps()  # CANDLEFLOW_AUTO_FILL_GAPS defaults to on
    assert [(g.first_id, g.last_id) for g in report.filled] == [(lo2, hi2)]
    assert [(r.gap.first_id, r.gap.last_id) for r in report.open] == [(lo, hi)]
    fetched = {r.params.get("fromId") for r in rest.requests if "historicalTrades" in r.path}
    assert fetched == {str(lo)}  # only the gap that was still open went to Binance
    rollup_candles("1h")  # the next scheduled run re-rolls the hours the late trades changed
    assert_every_interval_equals(env, trades)
    assert not any(
        r.is_open for r in gap_records.records(env.clients.dynamodb, env.spec.table.name)
    )


def test_a_ban_stops_the_backfill_at_once_and_leaves_the_gap_open(
    env: AwsEnv, rest: FakeBinanceRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut, lo, hi = without(btc(), 2000, 2499)
    ingest(env, cut, monkeypatch)
    rest.fail_next(418, retry_after=120)
    report = detect_gaps()
    assert [(r.gap.first_id, r.gap.last_id) for r in report.open] == [(lo, hi)]
    assert len([r for r in rest.requests if "historicalTrades" in r.path]) == 1  # never retried
    [record] = gap_records.records(env.clients.dynamodb, env.spec.table.name, "BTCUSDT")
    assert record.is_open


def test_a_hole_younger_than_the_settle_time_is_not_reported_yet(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = btc()
    newest = max(t.trade_time for t in trades)
    recent = [t for t in trades if t.trade_time >= newest - 60_000]  # the last minute or so
    cut, _, _ = without(trades, len(trades) - len(recent) // 2, len(trades) - len(recent) // 2 + 5)
    ingest(env, cut, monkeypatch)
    monkeypatch.setenv("CANDLEFLOW_GAP_SETTLE_MINUTES", "3")
    assert detect_gaps(fill=False).found == ()
    monkeypatch.setenv("CANDLEFLOW_GAP_SETTLE_MINUTES", "0")
    assert len(detect_gaps(fill=False).found) == 1
