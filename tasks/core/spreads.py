"""Effective spreads of a notional, sampled from order books, and their per-interval candles.

A sample trades ``notional`` quote currency (10,000 AUD, 100,000 USDT) both ways against one book
seen at ``ts_ms``: buying walks the asks upwards, selling walks the bids downwards, the last level
taken partly. With ``asks [(100, 1), (101, 2)]``, ``bids [(99, 1), (98, 2)]`` and 150 quote:

    buy:  100*1 = 100 quote for 1 base, then 50 quote for 50/101 base -> avg 150 / (1 + 50/101)
    sell: 99*1 = 99 quote for 1 base, then 51 quote for 51/98 base   -> avg 150 / (1 + 51/98)

``spread = buy avg - sell avg`` (price units) and ``spread_bps = spread / mid * 10_000`` with
``mid = (best bid + best ask) / 2``. A side whose whole depth ``sum(price * qty)`` is below the
notional cannot absorb it: the sample is ``thin``, reports how much of the notional the shallower
side filled, and has no averages nor spread (nothing is invented). One sample per book update, not
per minute: a candle summarises every sample of its interval.

Arithmetic is ``Decimal``: walking the book is exact (a 76-digit context trapping ``Inexact``: sums
and products of exchange decimals never round, and an input that would make them round raises);
each average is one correctly rounded division to 38 significant digits (DynamoDB's precision),
``avg = notional * p / (base_before * p + rest)``, so it is monotone in the notional like the exact
value; ``spread_bps`` and ``filled_fraction`` are one rounded division each; the spread is the
difference of the rounded averages (exact unless it needs more than 38 digits, then rounded once);
``mid`` is exact.

Quartiles are "type 7" of Hyndman & Fan (1996), the default of numpy, R and
``statistics.quantiles(method="inclusive")``: for sorted ``x[0..n-1]`` and ``p`` in {1/4, 1/2, 3/4},
``h = (n - 1) * p`` and ``q = x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h])``; one value
gives five equal statistics. They are computed exactly (``h - floor h`` is 0, 1/4, 1/2 or 3/4) and
rounded to 38 significant digits. A parent interval is summarised from the raw samples of all its
children, never from their quartiles (the quartiles of quartiles are not the quartiles).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from tasks.core.models import Interval
from tasks.core.orderbook import Book, Level

DECIMAL_DIGITS = 38  # DynamoDB numbers hold 38 significant digits
BPS = Decimal(10_000)
ZERO = Decimal(0)
_EXACT = Context(prec=76, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
_ROUNDED = Context(prec=DECIMAL_DIGITS, traps=[InvalidOperation, DivisionByZero, Overflow])
# Both are templates: ``localcontext`` works on a copy, so no flags pile up in module state.


def _rounded(value: Decimal) -> Decimal:
    """``value`` to 38 significant digits (unchanged when it has no more)."""
    with localcontext(_ROUNDED):
        return +value


def _divide(numerator: Decimal, denominator: Decimal) -> Decimal:
    """One correctly rounded division to 38 significant digits."""
    with localcontext(_ROUNDED):
        return numerator / denominator


@dataclass(frozen=True, slots=True)
class SpreadSample:
    """The cost of crossing ``market``'s book seen at ``ts_ms`` (ms) with ``notional`` quote.

    ``filled_fraction`` is the smaller of the two sides' filled share of the notional, in [0, 1];
    when ``thin`` the averages and spreads are None; ``mid`` is None when a side is empty.
    """

    market: str
    ts_ms: int
    mid: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    notional: Decimal
    buy_avg_price: Decimal | None
    sell_avg_price: Decimal | None
    spread: Decimal | None
    spread_bps: Decimal | None
    filled_fraction: Decimal
    thin: bool


def _walk(levels: Iterable[Level], notional: Decimal) -> tuple[Decimal, Decimal | None]:
    """(quote filled, average price) of trading ``notional`` quote through ``levels`` in order.

    The average is None when the levels hold less than the notional.
    """
    remaining, base = notional, ZERO
    with localcontext(_EXACT):
        for price, qty in levels:
            cost = price * qty
            if cost >= remaining:
                numerator, denominator = notional * price, base * price + remaining
                break
            base += qty
            remaining -= cost
        else:
            return notional - remaining, None
    return notional, _divide(numerator, denominator)


def sample(market: str, book: Book, notional: Decimal, ts_ms: int) -> SpreadSample:
    """Buy and sell ``notional`` (quote currency) against ``book`` (see the module docstring).

    A crossed book raises ``ValueError``: it is a wrong book, and its spread would be a made-up one.
    """
    if not (notional.is_finite() and notional > 0):
        raise ValueError(f"the notional must be a decimal > 0, got {notional}")
    if book.is_crossed:
        raise ValueError(f"the {market} book is crossed ({book!r}); resync it before sampling")
    bid, ask = book.best_bid, book.best_ask
    with localcontext(_EXACT):
        mid = None if bid is None or ask is None else (bid + ask) / 2
    bought, buy_avg = _walk(book.asks(), notional)
    sold, sell_avg = _walk(book.bids(), notional)
    filled = _divide(min(bought, sold), notional)
    if buy_avg is None or sell_avg is None or mid is None:
        return SpreadSample(
            market, ts_ms, mid, bid, ask, notional, None, None, None, None, filled, True
        )
    with localcontext(_ROUNDED):
        spread = buy_avg - sell_avg  # exact unless it needs more than 38 digits
        bps = spread * BPS / mid  # * 10_000 only appends zeros: the division rounds once
    return SpreadSample(
        market, ts_ms, mid, bid, ask, notional, buy_avg, sell_avg, spread, bps, filled, False
    )


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """Five-number summary (type-7 quartiles, see the module docstring) of ``count`` values."""

    count: int
    min: Decimal
    q1: Decimal
    median: Decimal
    q3: Decimal
    max: Decimal


def _quartile(ordered: list[Decimal], k: int) -> Decimal:
    """The k-th quartile (k = 1, 2, 3) of sorted values, type 7, exact then rounded."""
    index, quarters = divmod((len(ordered) - 1) * k, 4)
    low = ordered[index]
    if quarters == 0:
        return _rounded(low)
    with localcontext(_EXACT):
        exact = low + (ordered[index + 1] - low) * quarters / 4
    return _rounded(exact)


def spread_stats(values: Iterable[Decimal]) -> SpreadStats | None:
    """Min, quartiles and max of ``values`` (None when there are none); order does not matter."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not all(v.is_finite() for v in ordered):
        raise ValueError("spread values must be finite decimals")
    return SpreadStats(
        len(ordered),
        _rounded(ordered[0]),
        _quartile(ordered, 1),
        _quartile(ordered, 2),
        _quartile(ordered, 3),
        _rounded(ordered[-1]),
    )


@dataclass(frozen=True, slots=True)
class MidOhlc:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def mid_ohlc(samples: Iterable[SpreadSample]) -> MidOhlc | None:
    """OHLC of the mid price by sample time; equal times keep the order given. None without mids."""
    timed = sorted(
        ((s.ts_ms, i, s.mid) for i, s in enumerate(samples) if s.mid is not None),
        key=lambda t: (t[0], t[1]),
    )
    if not timed:
        return None
    mids = [mid for _, _, mid in timed]
    return MidOhlc(mids[0], max(mids), min(mids), mids[-1])


@dataclass(frozen=True, slots=True)
class SpreadCandle:
    """Every sample of ``market`` in one interval: mid OHLC, spread statistics, counts.

    ``spread`` (price units) and ``spread_bps`` summarise the samples that were not thin;
    ``sample_count`` counts all samples, ``thin_count`` the thin ones.
    """

    market: str
    interval: Interval
    open_time: int
    mid: MidOhlc | None
    spread: SpreadStats | None
    spread_bps: SpreadStats | None
    sample_count: int
    thin_count: int


def interval_summary(
    samples: Iterable[SpreadSample], interval: Interval, open_time: int
) -> SpreadCandle:
    """The candle of the interval starting at ``open_time``, from its raw samples (any order).

    For 1h and 1d pass the raw samples of the whole hour or day (the pooled samples of the
    children), not child candles. Samples of another market or outside the interval raise.
    """
    if interval.floor(open_time) != open_time:
        raise ValueError(f"open_time {open_time} is not the start of a {interval.value} interval")
    taken = list(samples)
    if not taken:
        raise ValueError(f"no samples for the {interval.value} interval at {open_time}")
    market = taken[0].market
    for s in taken:
        if s.market != market:
            raise ValueError(f"samples of {market} and {s.market} in one candle")
        if not open_time <= s.ts_ms < open_time + interval.ms:
            raise ValueError(
                f"a {market} sample at {s.ts_ms} is outside the {interval.value} interval "
                f"starting at {open_time}"
            )
    full = [s for s in taken if not s.thin]
    return SpreadCandle(
        market,
        interval,
        open_time,
        mid_ohlc(taken),
        spread_stats(s.spread for s in full if s.spread is not None),
        spread_stats(s.spread_bps for s in full if s.spread_bps is not None),
        len(taken),
        len(taken) - len(full),
    )


def seed_data(candle: SpreadCandle) -> list[Decimal] | None:
    """The seed's ``data`` array: [open, high, low, close, min, q1, q2, q3, max] (spread in price units).

    None when the interval has no mid price or no sample that was not thin: the item is then written
    without ``data`` (its counts say why) rather than with made-up numbers.
    """
    mid, spread = candle.mid, candle.spread
    if mid is None or spread is None:
        return None
    return [
        mid.open,
        mid.high,
        mid.low,
        mid.close,
        spread.min,
        spread.q1,
        spread.median,
        spread.q3,
        spread.max,
    ]
