from __future__ import annotations

from functools import cache

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.candles import aggregate
from tasks.core.gaps import Gap, Watermark, is_incomplete, remaining, scan, settled_through
from tasks.core.models import Candle, Interval
from tests.builders import BASE_TIME, capture_trades, make_trade, trades_frame

MINUTE = Interval.M1.ms
FAR = 10**15


def candles_of(ids_and_minutes: list[tuple[int, int]]) -> list[Candle]:
    """1m candles holding trade ``id`` in minute ``m`` (after BASE_TIME) for each pair."""
    trades = [make_trade(trade_id=i, trade_time=BASE_TIME + m * MINUTE) for i, m in ids_and_minutes]
    return aggregate(trades_frame(trades))


@cache
def btc() -> pl.DataFrame:
    return trades_frame(capture_trades("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"))


def test_a_block_of_missing_ids_is_one_gap_timed_from_the_minute_before_to_the_minute_after() -> (
    None
):
    candles = candles_of([(10, 0), (11, 0), (12, 1), (20, 3), (21, 3)])
    gaps, mark = scan("BTCUSDT", candles, None, FAR)
    assert gaps == [Gap("BTCUSDT", 13, 19, BASE_TIME + MINUTE, BASE_TIME + 4 * MINUTE - 1)]
    assert mark == Watermark("BTCUSDT", 21, BASE_TIME + 3 * MINUTE)


def test_holes_inside_one_minute_and_consecutive_scans_report_each_gap_once() -> None:
    first = candles_of([(1, 0), (3, 0), (4, 1)])
    gaps, mark = scan("BTCUSDT", first, None, FAR)
    assert [(g.first_id, g.last_id) for g in gaps] == [(2, 2)]
    assert gaps[0].start_ms == BASE_TIME and gaps[0].end_ms == BASE_TIME + MINUTE - 1
    # The next scan re-reads the watermark's minute (it may have grown) and what follows.
    later = candles_of([(4, 1), (5, 1), (9, 2)])
    again, mark2 = scan("BTCUSDT", later, mark, FAR)
    assert [(g.first_id, g.last_id) for g in again] == [(6, 8)]
    assert mark2 == Watermark("BTCUSDT", 9, BASE_TIME + 2 * MINUTE)
    assert scan("BTCUSDT", later, mark2, FAR) == ([], mark2)


def test_unsettled_minutes_are_left_for_a_later_scan() -> None:
    candles = candles_of([(1, 0), (5, 4)])
    through = settled_through(BASE_TIME + 4 * MINUTE, settle_minutes=3)
    gaps, mark = scan("BTCUSDT", candles, None, through)
    assert gaps == [] and mark == Watermark("BTCUSDT", 1, BASE_TIME)
    gaps, _ = scan("BTCUSDT", candles, mark, settled_through(BASE_TIME + 7 * MINUTE, 3))
    assert [(g.first_id, g.last_id) for g in gaps] == [(2, 4)]


def test_the_real_capture_has_no_gap_and_one_removed_block_is_found_exactly() -> None:
    trades = btc()
    assert scan("BTCUSDT", aggregate(trades), None, FAR)[0] == []
    ids = trades.get_column("trade_id")
    lo, hi = int(ids[5000]), int(ids[5999])
    cut = trades.filter(~pl.col("trade_id").is_between(lo, hi))
    [gap], _ = scan("BTCUSDT", aggregate(cut), None, FAR)
    assert (gap.first_id, gap.last_id) == (lo, hi)
    missing_times = trades.filter(pl.col("trade_id").is_between(lo, hi)).get_column("trade_time")
    assert gap.start_ms <= int(missing_times.min()) and int(missing_times.max()) <= gap.end_ms  # type: ignore[arg-type]
    incomplete = [c.open_time for c in aggregate(cut) if is_incomplete(c, [gap])]
    assert incomplete == list(range(gap.start_ms, gap.end_ms, MINUTE))


@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=120, unique=True),
    st.integers(1, 5),
)
def test_scans_in_any_steps_find_exactly_the_missing_ids(held: list[int], steps: int) -> None:
    ids = sorted(held)
    candles = candles_of([(i, i // 7) for i in ids])
    mark: Watermark | None = None
    found: list[Gap] = []
    last_minute = max(c.open_time for c in candles)
    for k in range(1, steps + 1):
        through = BASE_TIME + (last_minute - BASE_TIME) * k // steps
        start = mark.open_time if mark else 0
        gaps, mark = scan("BTCUSDT", [c for c in candles if c.open_time >= start], mark, through)
        found += gaps
    missing = {g for g in range(ids[0], ids[-1] + 1)} - set(ids)
    reported = [i for g in found for i in range(g.first_id, g.last_id + 1)]
    assert sorted(reported) == sorted(missing)  # each missing id exactly once
    for g in found:
        assert Interval.M1.floor(g.start_ms) == g.start_ms <= g.end_ms


def test_remaining_closes_a_filled_gap_and_narrows_a_partly_filled_one() -> None:
    gap = Gap("BTCUSDT", 13, 19, BASE_TIME + MINUTE, BASE_TIME + 4 * MINUTE - 1)
    base = [(12, 1), (20, 3)]
    assert remaining(gap, candles_of(base)) == [gap]
    assert remaining(gap, candles_of([*base, *((i, 2) for i in range(13, 20))])) == []
    parts = remaining(gap, candles_of([*base, (15, 2), (16, 2)]))
    assert parts == [
        Gap("BTCUSDT", 13, 14, BASE_TIME + MINUTE, BASE_TIME + 3 * MINUTE - 1),
        Gap("BTCUSDT", 17, 19, BASE_TIME + 2 * MINUTE, BASE_TIME + 4 * MINUTE - 1),
    ]


def test_a_gap_marks_every_interval_it_overlaps_incomplete_and_no_other() -> None:
    gap = Gap("BTCUSDT", 13, 19, BASE_TIME + MINUTE, BASE_TIME + 4 * MINUTE - 1)
    hour = Interval.H1.floor(BASE_TIME)
    for interval, open_time, expected in [
        (Interval.M1, BASE_TIME, False),
        (Interval.M1, BASE_TIME + MINUTE, True),
        (Interval.M1, BASE_TIME + 3 * MINUTE, True),
        (Interval.M1, BASE_TIME + 4 * MINUTE, False),
        (Interval.H1, hour, True),
        (Interval.H1, hour + Interval.H1.ms, False),
        (Interval.D1, Interval.D1.floor(BASE_TIME), True),
    ]:
        [c] = aggregate(trades_frame([make_trade(trade_time=open_time)]), interval)
        assert is_incomplete(c, [gap]) is expected, (interval, open_time)
        assert not is_incomplete(c, [Gap("ETHUSDT", 13, 19, gap.start_ms, gap.end_ms)])
