from __future__ import annotations

import random
import statistics
from collections.abc import Iterable
from decimal import Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.models import Interval
from tasks.core.orderbook import BinanceBookSync, Book, DepthUpdate
from tasks.core.spreads import (
    MidOhlc,
    SpreadSample,
    SpreadStats,
    interval_summary,
    mid_ohlc,
    sample,
    seed_data,
    spread_stats,
)
from tests.core.test_orderbook import capture, feed

HOUR = 1_723_158_000_000  # 2024-08-08T23:00:00Z
MINUTE = Interval.M1.ms
D38 = Context(prec=38)


def book_of(bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]) -> Book:
    return Book(
        [(Decimal(p), Decimal(q)) for p, q in bids], [(Decimal(p), Decimal(q)) for p, q in asks]
    )


def depth_of(levels: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    return sum((p * q for p, q in levels), Decimal(0))


def make_sample(
    ts_ms: int = HOUR,
    spread: str | Decimal | None = "1.5",
    mid: str | None = "100",
    market: str = "BTC-AUD",
) -> SpreadSample:
    """A sample with the fields the candle reads; ``spread=None`` makes a thin one."""
    value = None if spread is None else Decimal(spread)
    m = None if mid is None else Decimal(mid)
    bps = None if value is None or m is None else value * 10_000 / m
    return SpreadSample(
        market,
        ts_ms,
        m,
        None,
        None,
        Decimal(10_000),
        None,
        None,
        value,
        bps,
        Decimal(1) if value is not None else Decimal("0.5"),
        value is None,
    )


# --- one sample --------------------------------------------------------------------------------

LADDER = book_of([("99", "1"), ("98", "2")], [("100", "1"), ("101", "2")])


def test_within_the_best_levels_the_spread_is_the_quoted_one() -> None:
    s = sample("BTC-AUD", LADDER, Decimal(50), 1)
    assert (s.mid, s.best_bid, s.best_ask) == (Decimal("99.5"), Decimal(99), Decimal(100))
    assert (s.buy_avg_price, s.sell_avg_price, s.spread) == (Decimal(100), Decimal(99), Decimal(1))
    assert s.spread_bps == D38.divide(Decimal(10_000), Decimal("99.5"))
    assert (s.filled_fraction, s.thin) == (Decimal(1), False)


def test_a_notional_past_the_best_level_pays_the_next_one_for_the_rest() -> None:
    s = sample("BTC-AUD", LADDER, Decimal(150), 1)
    # buy: 100 quote for 1 base at 100, 50 quote for 50/101 base; sell: 99 for 1, 51 for 51/98.
    assert s.buy_avg_price == D38.divide(Decimal(150 * 101), Decimal(101 + 50))
    assert s.sell_avg_price == D38.divide(Decimal(150 * 98), Decimal(98 + 51))
    assert s.buy_avg_price is not None and s.sell_avg_price is not None
    assert s.spread == Decimal("1.673407707009200408907062536112716124")  # the exact difference
    assert s.spread == Context(prec=76).subtract(s.buy_avg_price, s.sell_avg_price)
    assert s.spread_bps == D38.divide(D38.scaleb(s.spread, 4), Decimal("99.5"))


def test_a_side_holding_exactly_the_notional_fills_and_a_cent_more_is_thin() -> None:
    book = book_of([("99", "1")], [("100", "1")])
    assert not sample("BTC-AUD", book, Decimal(99), 1).thin
    thin = sample("BTC-AUD", book, Decimal("99.01"), 1)
    assert thin.thin and thin.filled_fraction == D38.divide(Decimal(99), Decimal("99.01"))
    assert (thin.spread, thin.spread_bps, thin.buy_avg_price, thin.sell_avg_price) == (None,) * 4
    assert thin.mid == Decimal("99.5")


def test_an_empty_side_gives_no_mid_and_a_thin_sample() -> None:
    s = sample("BTC-AUD", book_of([], [("100", "1")]), Decimal(10), 1)
    assert (s.mid, s.best_bid, s.thin, s.filled_fraction, s.spread) == (
        None,
        None,
        True,
        Decimal(0),
        None,
    )


def test_a_crossed_book_or_a_non_positive_notional_is_refused() -> None:
    with pytest.raises(ValueError, match="crossed"):
        sample("BTC-AUD", book_of([("101", "1")], [("100", "1")]), Decimal(10), 1)
    with pytest.raises(ValueError, match="notional"):
        sample("BTC-AUD", LADDER, Decimal(0), 1)


cents = st.integers(1, 100_000)
quantities = st.integers(1, 10**6).map(lambda n: Decimal(n).scaleb(-4))


@st.composite
def books(draw: st.DrawFn, min_levels: int = 0) -> Book:
    """An uncrossed book: every bid below ``split`` cents, every ask at or above it."""
    split = draw(st.integers(2, 99_999))
    bid_cents = draw(
        st.lists(st.integers(1, split - 1), min_size=min_levels, max_size=8, unique=True)
    )
    ask_cents = draw(
        st.lists(st.integers(split, 100_000), min_size=min_levels, max_size=8, unique=True)
    )
    return Book(
        [(Decimal(c).scaleb(-2), draw(quantities)) for c in bid_cents],
        [(Decimal(c).scaleb(-2), draw(quantities)) for c in ask_cents],
    )


@given(books(), st.integers(1, 10**9).map(lambda n: Decimal(n).scaleb(-2)))
def test_a_sample_is_thin_exactly_when_a_side_holds_less_than_the_notional(
    book: Book, notional: Decimal
) -> None:
    s = sample("BTC-AUD", book, notional, 1)
    bid_depth, ask_depth = depth_of(book.bids()), depth_of(book.asks())
    assert s.thin == (bid_depth < notional or ask_depth < notional)
    assert Decimal(0) <= s.filled_fraction <= Decimal(1)
    assert (s.filled_fraction == 1) == (not s.thin)
    assert s.filled_fraction == D38.divide(min(bid_depth, ask_depth, notional), notional)
    if not s.thin:
        assert s.spread is not None and s.spread_bps is not None and s.mid is not None
        assert s.buy_avg_price >= s.best_ask > s.best_bid >= s.sell_avg_price
        assert s.spread > 0 and s.spread_bps > 0


@given(books(min_levels=1), st.integers(1, 1000), st.integers(1, 1000))
def test_trading_more_never_gets_a_better_average_price(book: Book, k1: int, k2: int) -> None:
    small, large = sorted((k1, k2))
    room = min(depth_of(book.bids()), depth_of(book.asks()))
    a = sample("BTC-AUD", book, room * small / 1000, 1)
    b = sample("BTC-AUD", book, room * large / 1000, 1)
    assert not a.thin and not b.thin
    assert a.buy_avg_price <= b.buy_avg_price
    assert a.sell_avg_price >= b.sell_avg_price
    assert a.spread <= b.spread


# --- quartiles ---------------------------------------------------------------------------------


def stats(*values: str) -> SpreadStats | None:
    return spread_stats(Decimal(v) for v in values)


def test_quartiles_interpolate_between_closest_ranks_as_numpy_does() -> None:
    assert stats("1", "2", "3", "4") == SpreadStats(
        4, Decimal(1), Decimal("1.75"), Decimal("2.5"), Decimal("3.25"), Decimal(4)
    )
    assert stats("7") == SpreadStats(1, *[Decimal(7)] * 5)
    assert stats() is None


spreads = st.integers(0, 10**7).map(lambda n: Decimal(n).scaleb(-3))


@given(st.lists(spreads, min_size=2, max_size=60), st.randoms(use_true_random=False))
def test_quartiles_are_type_7_ordered_and_ignore_the_order_of_the_values(
    values: list[Decimal], rnd: random.Random
) -> None:
    s = spread_stats(values)
    assert s is not None
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    assert (s.count, s.min, s.q1, s.median, s.q3, s.max) == (
        len(values),
        min(values),
        q1,
        q2,
        q3,
        max(values),
    )
    assert s.min <= s.q1 <= s.median <= s.q3 <= s.max
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert spread_stats(shuffled) == s


@given(
    st.lists(
        st.lists(st.one_of(st.none(), spreads), min_size=1, max_size=20), min_size=1, max_size=6
    )
)
def test_an_hour_summarises_the_pooled_samples_of_its_minutes(
    minutes: list[list[Decimal | None]],
) -> None:
    samples = [
        make_sample(HOUR + m * MINUTE + i, spread)  # None: a thin sample
        for m, values in enumerate(minutes)
        for i, spread in enumerate(values)
    ]
    hour = interval_summary(samples, Interval.H1, HOUR)
    pooled = [v for values in minutes for v in values if v is not None]
    assert hour.spread == spread_stats(pooled)
    assert interval_summary(samples[::-1], Interval.H1, HOUR) == hour
    assert (hour.sample_count, hour.thin_count) == (len(samples), len(samples) - len(pooled))
    children = [
        interval_summary(
            [s for s in samples if Interval.M1.floor(s.ts_ms) == HOUR + m * MINUTE],
            Interval.M1,
            HOUR + m * MINUTE,
        )
        for m in range(len(minutes))
    ]
    assert sum(c.sample_count for c in children) == hour.sample_count
    assert sum(c.thin_count for c in children) == hour.thin_count
    if hour.spread is not None:
        assert min(c.spread.min for c in children if c.spread) == hour.spread.min
        assert max(c.spread.max for c in children if c.spread) == hour.spread.max


def test_the_quartiles_of_the_minutes_quartiles_are_not_the_hours_quartiles() -> None:
    steady, spike = ["1"] * 9, ["10"]  # nine samples at 1 in one minute, one at 10 in the next
    pooled = stats(*steady, *spike)
    assert pooled is not None and pooled.median == Decimal(1)
    of_medians = spread_stats([stats(*steady).median, stats(*spike).median])
    assert of_medians is not None and of_medians.median == Decimal("5.5") != pooled.median


# --- candles -----------------------------------------------------------------------------------


def test_a_candle_has_the_mid_ohlc_by_time_and_the_spread_of_the_samples_that_were_not_thin() -> (
    None
):
    samples = [
        make_sample(HOUR + 30_000, "2", mid="101"),
        make_sample(HOUR + 10_000, "1", mid="100"),
        make_sample(HOUR + 10_000, None, mid="99"),  # same time: after the one above, as given
        make_sample(HOUR + 50_000, "4", mid="103"),
        make_sample(HOUR + 50_000, "3", mid="102"),
    ]
    candle = interval_summary(samples, Interval.M1, HOUR)
    assert candle.mid == MidOhlc(Decimal(100), Decimal(103), Decimal(99), Decimal(102))
    assert (candle.sample_count, candle.thin_count) == (5, 1)
    assert candle.spread == stats("1", "2", "3", "4")
    assert candle.spread_bps is not None and candle.spread_bps.count == 4
    open_high_low_close = ["100", "103", "99", "102"]
    min_q1_q2_q3_max = ["1", "1.75", "2.5", "3.25", "4"]
    assert seed_data(candle) == [Decimal(v) for v in open_high_low_close + min_q1_q2_q3_max]


def test_a_candle_of_thin_samples_only_has_no_seed_data() -> None:
    candle = interval_summary(
        [make_sample(HOUR, None), make_sample(HOUR + 1, None)], Interval.M1, HOUR
    )
    assert (candle.spread, candle.sample_count, candle.thin_count) == (None, 2, 2)
    assert candle.mid == MidOhlc(*[Decimal(100)] * 4)
    assert seed_data(candle) is None
    assert mid_ohlc([make_sample(mid=None)]) is None


@pytest.mark.parametrize(
    ("samples", "open_time", "message"),
    [
        ([make_sample(HOUR + MINUTE)], HOUR, "outside the 1m interval"),
        ([make_sample(HOUR), make_sample(HOUR, market="ETH-AUD")], HOUR, "BTC-AUD and ETH-AUD"),
        ([make_sample(HOUR)], HOUR + 1, "not the start"),
        ([], HOUR, "no samples"),
    ],
)
def test_a_candle_refuses_samples_that_do_not_belong_to_it(
    samples: list[SpreadSample], open_time: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        interval_summary(samples, Interval.M1, open_time)


def test_the_real_btcusdt_book_gives_positive_spreads_and_hours_pool_their_minutes() -> None:
    messages, _ = capture("BTCUSDT")
    sync = BinanceBookSync("BTCUSDT")
    samples = []
    for n, message in enumerate(messages):
        feed(sync, message)
        book = sync.book if isinstance(message, DepthUpdate) and n % 4 == 0 else None
        if book is not None:
            samples.append(sample("BTCUSDT", book, Decimal(100_000), message.event_time))
    assert len(samples) > 1500 and not any(s.thin for s in samples)
    assert all(s.spread > 0 and s.spread_bps < 5 for s in samples)
    for hour_start in sorted({Interval.H1.floor(s.ts_ms) for s in samples}):
        in_hour = [s for s in samples if Interval.H1.floor(s.ts_ms) == hour_start]
        hour = interval_summary(in_hour, Interval.H1, hour_start)
        minute_starts = sorted({Interval.M1.floor(s.ts_ms) for s in in_hour})
        minutes = [
            interval_summary(
                [s for s in in_hour if Interval.M1.floor(s.ts_ms) == m], Interval.M1, m
            )
            for m in minute_starts
        ]
        assert hour.spread == spread_stats(s.spread for s in in_hour)
        assert hour.sample_count == sum(m.sample_count for m in minutes)
        assert hour.mid is not None and minutes[0].mid is not None and minutes[-1].mid is not None
        assert (hour.mid.open, hour.mid.close) == (minutes[0].mid.open, minutes[-1].mid.close)
        assert hour.mid.high == max(m.mid.high for m in minutes if m.mid is not None)
