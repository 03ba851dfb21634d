"""The rebuild benchmark's pieces: the synthetic day, the lake it writes, the check and the table.

The phase itself (servers, worker, timings) runs under ``candleflow bench --phases rebuild``; nothing
here is timed.
"""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import replace
from typing import Any

import polars as pl

from benchmarks import load, rebuild
from benchmarks.report import render, verdicts
from tasks.aws import s3
from tasks.core.keys import partition_path
from tasks.core.models import Interval, empty_candle
from tasks.core.rebuild import lake_trades
from tests.conftest import AwsEnv

DAY = rebuild.DAY_START_MS


def test_a_synthetic_day_is_one_symbol_with_consecutive_ids_inside_the_day() -> None:
    lines = [json.loads(line) for line in load.day(3_000, DAY, seed=5)]
    first = load.MARKETS[0].first_id
    assert [t["t"] for t in lines] == list(range(first, first + 3_000))
    assert {t["s"] for t in lines} == {"BTCUSDT"}
    times = [t["T"] for t in lines]
    assert times == sorted(times) and times[0] >= DAY and times[-1] < DAY + load.DAY_MS
    assert all(len(t["p"].split(".")[1]) == 8 and len(t["q"].split(".")[1]) == 8 for t in lines)
    assert load.day(3_000, DAY, seed=5) == [json.dumps(t, separators=(",", ":")) for t in lines]


def test_the_lake_holds_every_trade_once_in_several_objects_per_hour(aws: AwsEnv) -> None:
    trades = rebuild.trades_frame(load.day(6_000, DAY, seed=2), chunk=100)
    lake = rebuild.write_lake(aws.clients, aws.spec, trades, chunk=100)
    bucket = aws.spec.bucket
    hour = f"{bucket.trades_prefix}/{partition_path('BTCUSDT', DAY)}/"
    assert len(list(s3.list_keys(aws.clients.s3, bucket.name, hour))) > 1
    keys = [
        k
        for k in s3.list_keys(aws.clients.s3, bucket.name, f"{bucket.trades_prefix}/")
        if k.endswith(".parquet")
    ]
    assert len(keys) == lake.parquet_objects == lake.raw_objects
    read = pl.concat(
        lake_trades(pl.read_parquet(io.BytesIO(s3.get(aws.clients.s3, bucket.name, k))), "BTCUSDT")
        for k in keys
    ).sort("trade_id")
    columns = read.columns
    assert read.equals(trades.select(columns).sort("trade_id"))


def test_the_check_wants_the_aggregate_with_empty_klines_between_and_nothing_else() -> None:
    trades = rebuild.trades_frame(load.day(200, DAY, seed=3), chunk=100)
    minute = Interval.M1.ms
    traded = rebuild.expected_candles(trades)[Interval.M1]
    pair = next([c, d] for c, d in itertools.pairwise(traded) if d.open_time > c.open_time + minute)
    close = pair[0].close
    gap = range(pair[0].open_time + minute, pair[1].open_time, minute)
    fillers = [empty_candle("BTCUSDT", Interval.M1, t, close) for t in gap]
    assert rebuild.differences([*pair, *fillers], pair) == []
    assert len(rebuild.differences(pair, pair)) == len(gap)  # empty klines not stored
    wrong = replace(fillers[0], close=close + 1)
    assert "!=" in rebuild.differences([*pair, wrong, *fillers[1:]], pair)[0]
    outside = empty_candle("BTCUSDT", Interval.M1, pair[0].open_time - minute, close)
    assert "outside" in rebuild.differences([outside, *pair, *fillers], pair)[0]


def _results(seconds: float, exact: bool = True) -> dict[str, Any]:
    run = {
        "key": "first",
        "label": "first build",
        "seconds": seconds,
        "cpu_s": 1.0,
        "moto_cpu_s": 2.0,
        "prefect_cpu_s": 0.5,
        "foreign_cpu_s": 0.1,
        "foreign_share": 0.01,
        "peak_rss_kb": 400 * 1024,
        "rss_before_kb": 200 * 1024,
        "peak_reset": True,
        "trades_per_s": 1e6 / seconds,
        "minutes": 1440,
        "minutes_written": 1440,
        "breakdown": {"read lake": 1.0, "rebuild 1m": 2.0, "rollup": 1.0, "export": 1.0},
    }
    lake = {"parquet_objects": 124, "parquet_bytes": 2**20}
    return {
        "machine": {"cpus": 2, "python": "3.11", "commit": "abc", "time": "now"},
        "rebuild": {
            "symbol": "BTCUSDT",
            "day": "2024-08-08",
            "trades": 1_000_000,
            "lake": lake,
            "candles": {"1m": 1440, "1h": 24, "1d": 1},
            "exact": exact,
            "runs": [run],
        },
    }


def test_the_table_judges_each_rebuild_run_against_ten_seconds() -> None:
    for seconds, exact, mark in ((6.0, True, "ok"), (12.0, True, "MISSED"), (6.0, False, "MISSED")):
        results = _results(seconds, exact)
        results["verdicts"] = verdicts(results)
        assert results["verdicts"]["rebuild_first"]["met"] is (mark == "ok")
        [row] = [line for line in render(results).splitlines() if "first build" in line]
        assert row.rstrip().endswith(mark) and "<= 10 s" in row


def test_the_breakdown_groups_the_backfill_task_runs_and_the_rollup_subflow() -> None:
    timings = {
        "tasks": {"read_lake": 1.0, "rebuild_candles": 2.0, "fill_empty_candles": 0.5},
        "subflows": {"rollup-candles": {"seconds": 3.0, "tasks": {}}},
    }
    timings["tasks"]["export_candles"] = 1.5
    assert rebuild.breakdown(timings, 10.0) == {
        "read lake": 1.0,
        "rebuild 1m": 2.5,
        "rollup": 3.0,
        "export": 1.5,
        "other": 2.0,
    }
