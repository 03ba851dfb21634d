from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal, Inexact
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.candles import aggregate, plan_empty_fill
from tasks.core.models import Candle, Interval, empty_candle
from tasks.core.rollup import (
    DirtyMarker,
    RollupScope,
    consecutive_runs,
    dirty_parents,
    plan_parents,
    rollup,
    rollup_scopes,
)
from tests.builders import BASE_TIME, Trade, draw_trade, trades_frame

MINUTE, HOUR, DAY = Interval.M1.ms, Interval.H1.ms, Interval.D1.ms
DAY_START = Interval.D1.floor(BASE_TIME)  # 2024-08-08T00:00:00Z


@st.composite
def spread_trades(draw: st.DrawFn, longest_gap_ms: int) -> list[Trade]:
    """Trades of two symbols, ids rising with time, with gaps up to ``longest_gap_ms``."""
    n = draw(st.integers(1, 40))
    first_id = draw(st.integers(1, 10**12))
    t = DAY_START + draw(st.integers(0, DAY - 1))
    trades = []
    for i in range(n):
        t += draw(st.one_of(st.integers(0, 90_000), st.integers(0, longest_gap_ms)))
        trades.append(draw_trade(draw, first_id + i, t))
    return trades


def with_empty_klines(candles: list[Candle]) -> list[Candle]:
    """The candles plus the empty klines the ingest writes between traded ones."""
    out = list(candles)
    for symbol in {c.symbol for c in candles}:
        fills, skipped = plan_empty_fill([c for c in candles if c.symbol == symbol], 10**6)
        assert skipped == 0
        out += fills
    return out


def roll_all(children: list[Candle], parent: Interval) -> dict[tuple[str, int], Candle]:
    """Every parent of ``children``, in time order per symbol, each carrying the previous close."""
    groups: dict[tuple[str, int], list[Candle]] = {}
    for c in children:
        groups.setdefault((c.symbol, parent.floor(c.open_time)), []).append(c)
    out: dict[tuple[str, int], Candle] = {}
    closes: dict[str, Decimal] = {}
    for key in sorted(groups, key=lambda k: k[1]):
        candle = rollup(groups[key], parent, closes.get(key[0]))
        assert candle is not None
        out[key] = candle
        closes[key[0]] = candle.close
    return out


def keyed(candles: list[Candle]) -> dict[tuple[str, int], Candle]:
    return {(c.symbol, c.open_time): c for c in candles}


def assert_rollup_equals_direct(
    rolled: dict[tuple[str, int], Candle], direct: dict[tuple[str, int], Candle]
) -> None:
    """Traded parents equal the direct aggregation field for field (trade-id ranges included);
    the others are empty klines carrying the close of the parent before them."""
    assert set(direct) <= set(rolled)
    for key, candle in rolled.items():
        if key in direct:
            assert candle == direct[key], key
        else:
            before = rolled[(key[0], key[1] - candle.interval.ms)]
            assert candle == empty_candle(key[0], candle.interval, key[1], before.close)


@given(spread_trades(longest_gap_ms=3 * HOUR))
@settings(max_examples=60, deadline=None)
def test_rolling_1m_into_1h_equals_aggregating_the_trades_into_1h(trades: list[Trade]) -> None:
    frame = trades_frame(trades)
    minutes = with_empty_klines(aggregate(frame, Interval.M1))
    assert_rollup_equals_direct(
        roll_all(minutes, Interval.H1), keyed(aggregate(frame, Interval.H1))
    )


@given(spread_trades(longest_gap_ms=2 * DAY))
@settings(max_examples=60, deadline=None)
def test_rolling_1h_into_1d_equals_aggregating_the_trades_into_1d(trades: list[Trade]) -> None:
    frame = trades_frame(trades)
    hours = with_empty_klines(aggregate(frame, Interval.H1))
    direct = keyed(aggregate(frame, Interval.D1))
    assert_rollup_equals_direct(roll_all(hours, Interval.D1), direct)
    # and through both levels, from the 1m klines
    chained = roll_all(
        list(roll_all(aggregate(frame, Interval.M1), Interval.H1).values()), Interval.D1
    )
    assert chained == direct


@given(spread_trades(longest_gap_ms=20 * MINUTE), st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_the_order_of_the_children_does_not_matter(trades: list[Trade], rnd: random.Random) -> None:
    minutes = with_empty_klines(aggregate(trades_frame(trades), Interval.M1))
    shuffled = rnd.sample(minutes, k=len(minutes))
    assert roll_all(shuffled, Interval.H1) == roll_all(minutes, Interval.H1)


def test_an_hour_of_empty_klines_is_an_empty_kline_carrying_the_previous_close() -> None:
    start = Interval.H1.floor(BASE_TIME)
    empties = [
        empty_candle("BTCUSDT", Interval.M1, start + i * MINUTE, Decimal("61000.5")) for i in (3, 7)
    ]
    assert rollup(empties, Interval.H1, Decimal("61000.50")) == empty_candle(
        "BTCUSDT", Interval.H1, start, Decimal("61000.50")
    )
    assert rollup(empties, Interval.H1, None) is None  # no close known to carry
    assert rollup([], Interval.H1, Decimal(1)) is None


def traded_minute(trade_id: int, minute: int, price: str = "5") -> Candle:
    [candle] = aggregate(
        trades_frame(
            [Trade(trade_id=trade_id, price=price, trade_time=BASE_TIME + minute * MINUTE)]
        )
    )
    return candle


def test_empty_children_contribute_nothing_to_a_traded_parent() -> None:
    empty = empty_candle("BTCUSDT", Interval.M1, BASE_TIME, Decimal("99"))
    [direct] = aggregate(trades_frame([Trade(trade_id=7, price="5")]), Interval.H1)
    assert rollup([empty, traded_minute(7, 2)], Interval.H1, Decimal("1")) == direct


def test_sums_wider_than_python_s_default_28_digits_stay_exact() -> None:
    wide = Decimal("123456789012345.1234567890123456")  # 31 digits
    parts = [replace(traded_minute(i, i), quote_volume=wide) for i in (1, 2)]
    rolled = rollup(parts, Interval.H1, None)
    assert rolled is not None
    assert rolled.quote_volume == Decimal("246913578024690.2469135780246912")
    too_wide = [replace(p, quote_volume=Decimal("9" * 30 + ".12345678")) for p in parts]
    with pytest.raises(Inexact):
        rollup(too_wide, Interval.H1, None)  # 39 digits: refused, never rounded silently


def test_children_of_another_parent_symbol_or_level_are_refused() -> None:
    a = empty_candle("BTCUSDT", Interval.M1, BASE_TIME, Decimal(1))
    for other in (
        empty_candle("ETHUSDT", Interval.M1, BASE_TIME, Decimal(1)),
        empty_candle("BTCUSDT", Interval.M1, BASE_TIME + HOUR, Decimal(1)),
        empty_candle("BTCUSDT", Interval.H1, Interval.H1.floor(BASE_TIME), Decimal(1)),
    ):
        with pytest.raises(ValueError, match="cannot roll"):
            rollup([a, other], Interval.H1, None)
    with pytest.raises(ValueError, match="1m candles are not rolled up"):
        rollup([a], Interval.M1, None)


def test_written_candles_mark_their_parents_dirty() -> None:
    m1 = empty_candle("BTCUSDT", Interval.M1, BASE_TIME + 2 * MINUTE, Decimal(1))
    h1 = empty_candle("ETHUSDT", Interval.H1, Interval.H1.floor(BASE_TIME), Decimal(1))
    d1 = empty_candle("ETHUSDT", Interval.D1, DAY_START, Decimal(1))
    assert dirty_parents([m1, m1, h1, d1]) == {
        ("BTCUSDT", Interval.H1, Interval.H1.floor(BASE_TIME)),
        ("ETHUSDT", Interval.D1, DAY_START),
    }


def test_a_scheduled_run_covers_its_trailing_window_then_the_dirty_parents_above() -> None:
    now = DAY_START + 5 * HOUR + 17 * MINUTE
    assert rollup_scopes(Interval.H1, None, now, lookback=2) == [
        RollupScope(Interval.H1, (DAY_START + 3 * HOUR, DAY_START + 5 * HOUR), None),
        RollupScope(Interval.D1, None, None),
    ]
    assert rollup_scopes(Interval.D1, None, now, lookback=0) == [
        RollupScope(Interval.D1, (DAY_START, DAY_START), None)
    ]


def test_an_explicit_window_covers_the_overlapping_parents_and_only_their_markers() -> None:
    span = (DAY_START + 90 * MINUTE, DAY_START + 3 * HOUR)
    hours = (DAY_START + HOUR, DAY_START + 3 * HOUR)
    assert rollup_scopes(Interval.H1, span, now_ms=0, lookback=5) == [
        RollupScope(Interval.H1, hours, hours),
        RollupScope(Interval.D1, None, (DAY_START, DAY_START)),
    ]
    with pytest.raises(ValueError, match="ends before it starts"):
        rollup_scopes(Interval.H1, (span[1], span[0]), 0, 0)


def test_the_plan_unites_the_window_and_the_dirty_parents_of_the_chosen_symbols() -> None:
    markers = [
        DirtyMarker("BTCUSDT", Interval.H1, DAY_START + 9 * HOUR, "a"),
        DirtyMarker("BTCUSDT", Interval.H1, DAY_START + HOUR, "b"),  # inside the window
        DirtyMarker("DOGEUSDT", Interval.H1, DAY_START, "c"),  # not a chosen symbol
    ]
    window = (DAY_START, DAY_START + HOUR)
    assert plan_parents(Interval.H1, window, markers, ["BTCUSDT", "ETHUSDT"]) == {
        "BTCUSDT": [DAY_START, DAY_START + HOUR, DAY_START + 9 * HOUR],
        "ETHUSDT": [DAY_START, DAY_START + HOUR],
    }
    assert plan_parents(Interval.H1, None, markers, ["ETHUSDT"]) == {}


@given(
    times=st.sets(st.integers(0, 200), max_size=60).map(sorted),
    max_len=st.integers(1, 30),
)
def test_consecutive_runs_cover_the_times_once_each_run_a_contiguous_range(
    times: list[int], max_len: int
) -> None:
    runs = consecutive_runs([t * HOUR for t in times], HOUR, max_len)
    assert [t for run in runs for t in run] == [t * HOUR for t in times]
    for run in runs:
        assert 1 <= len(run) <= max_len
        assert run == list(range(run[0], run[-1] + 1, HOUR))  # one range read serves it
    for before, after in pairwise(runs):
        # A run is cut only at a hole or at the length limit.
        assert after[0] - before[-1] > HOUR or len(before) == max_len
