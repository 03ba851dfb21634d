from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.candles import aggregate, exclude_known, merge, plan_empty_fill
from tasks.core.models import Candle, Interval, empty_candle
from tests.builders import (
    BASE_TIME,
    Trade,
    capture_trades,
    draw_trade,
    kline,
    reference_candles,
    trades_frame,
)

MINUTE = 60_000


@st.composite
def trade_sets(draw: st.DrawFn) -> list[Trade]:
    n = draw(st.integers(1, 60))
    start = draw(st.integers(1, 10**12))
    trades = []
    t = BASE_TIME
    for i in range(n):
        t += draw(st.integers(0, 40_000))
        trades.append(draw_trade(draw, start + i, t))
    return trades


def as_reference(candles: list[Candle]) -> dict[tuple[str, int], tuple[object, ...]]:
    return {(c.symbol, c.open_time): kline(c) for c in candles}


def reference(trades: list[Trade]) -> dict[tuple[str, int], tuple[object, ...]]:
    return {k: kline(r) for k, r in reference_candles(trades).items()}


def upsert_in_parts(parts: list[list[Trade]]) -> list[Candle]:
    """What the ingest does batch after batch: drop known trades, aggregate the rest, merge."""
    stored: dict[tuple[str, int], Candle] = {}
    for part in parts:
        if not part:
            continue
        fresh = exclude_known(trades_frame(part), stored.values())
        for candle in aggregate(fresh):
            key = (candle.symbol, candle.open_time)
            stored[key] = merge(stored.get(key), candle)
    return list(stored.values())


@given(trade_sets())
def test_aggregate_equals_the_reference_kline(trades: list[Trade]) -> None:
    assert as_reference(aggregate(trades_frame(trades))) == reference(trades)


@given(trade_sets(), st.randoms(use_true_random=False), st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_shuffled_duplicated_split_batches_give_the_same_candles(
    trades: list[Trade], rnd: object, parts: int
) -> None:
    import random

    assert isinstance(rnd, random.Random)
    delivered = trades + rnd.sample(trades, k=len(trades) // 2)  # redeliveries
    rnd.shuffle(delivered)
    cuts = sorted(rnd.randint(0, len(delivered)) for _ in range(parts - 1))
    chunks = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]
    assert as_reference(upsert_in_parts(chunks)) == reference(trades)


@given(trade_sets())
def test_candle_invariants_hold(trades: list[Trade]) -> None:
    for c in aggregate(trades_frame(trades)):
        assert c.low <= c.open <= c.high and c.low <= c.close <= c.high
        assert c.taker_buy_volume <= c.volume and c.trade_count >= 1
        assert c.close_time == c.open_time + MINUTE - 1


def test_a_redelivered_batch_changes_nothing() -> None:
    trades = [Trade(trade_id=i, price=f"{100 + i}.5", trade_time=BASE_TIME + i) for i in range(5)]
    once = upsert_in_parts([trades])
    assert as_reference(upsert_in_parts([trades, trades, trades[2:]])) == as_reference(once)


def test_exclude_known_keeps_only_new_ids() -> None:
    stored = aggregate(trades_frame([Trade(trade_id=i) for i in (1, 2, 3, 7)]))
    fresh = exclude_known(trades_frame([Trade(trade_id=i) for i in range(0, 10)]), stored)
    assert sorted(fresh["trade_id"].to_list()) == [0, 4, 5, 6, 8, 9]
    other_symbol = exclude_known(trades_frame([Trade(symbol="ETHUSDT", trade_id=2)]), stored)
    assert other_symbol["trade_id"].to_list() == [2]


def test_empty_minutes_between_traded_minutes_carry_the_previous_close() -> None:
    trades = [
        Trade(trade_id=1, price="10", trade_time=BASE_TIME),
        Trade(trade_id=2, price="11", trade_time=BASE_TIME + 10),
        Trade(trade_id=3, price="12", trade_time=BASE_TIME + 3 * MINUTE),
    ]
    candles = aggregate(trades_frame(trades))
    writes, skipped = plan_empty_fill(candles, limit=100)
    assert skipped == 0
    assert [w.open_time for w in writes] == [BASE_TIME + MINUTE, BASE_TIME + 2 * MINUTE]
    assert all(w.open == w.high == w.low == w.close == Decimal("11") for w in writes)
    assert all(w.volume == 0 and w.trade_count == 0 and w.is_empty for w in writes)
    # Once written, nothing is left to do; a stale empty kline is rewritten with its version.
    assert plan_empty_fill(candles + writes, limit=100) == ([], 0)
    stale = empty_candle("BTCUSDT", Interval.M1, BASE_TIME + MINUTE, Decimal("9")).with_version(4)
    fixed, _ = plan_empty_fill([*candles, stale, writes[1]], limit=100)
    assert [(w.open_time, w.close, w.version) for w in fixed] == [
        (BASE_TIME + MINUTE, Decimal("11"), 4)
    ]
    assert plan_empty_fill(candles, limit=1) == ([], 2)


def test_real_capture_minutes_equal_binance_official_klines() -> None:
    trades = capture_trades("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
    candles = {(c.symbol, c.open_time): c for c in aggregate(trades_frame(trades))}
    btc = candles[("BTCUSDT", BASE_TIME)]  # 2024-08-08 23:55
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume) == tuple(
        map(Decimal, ("61828.00", "61860.80", "61780.00", "61782.25", "15.07702"))
    )
    eth = candles[("ETHUSDT", BASE_TIME + 6 * MINUTE)]  # 2024-08-09 00:01
    assert (eth.open, eth.high, eth.low, eth.close, eth.volume) == tuple(
        map(Decimal, ("2679.40", "2679.40", "2673.60", "2677.41", "841.985"))
    )
    assert as_reference(list(candles.values())) == reference(trades)
