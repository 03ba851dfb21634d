"""Rollups 1m -> 1h -> 1d: a parent kline is a pure function of its child klines.

Rolling up equals aggregating the trades straight into the parent interval: the children of one
parent hold disjoint trades, so ``merge`` adds them up (open of the child holding the first trade id,
close of the one holding the last, high/low max/min, volumes and counts summed, trade-id ranges
united). Empty children (Binance's empty klines) add nothing; a parent with only empty children is
itself an empty kline carrying the previous parent's close.

Sums run in a 38-digit context (DynamoDB's number precision) with ``Inexact`` trapped, so a daily
quote volume is never rounded silently by Python's default 28 digits.

A parent must be recomputed whenever one of its children changes. Writers of children record that
as a dirty marker of the parent (``dirty_parents``); the rollup flow consumes the markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal, Inexact, localcontext

from tasks.core.candles import merge
from tasks.core.models import Candle, Interval, empty_candle

PARENT = {Interval.M1: Interval.H1, Interval.H1: Interval.D1}
"""The interval each interval rolls up into."""

CHILD = {parent: child for child, parent in PARENT.items()}
"""The interval each rolled-up interval is computed from."""

DECIMAL_DIGITS = 38  # DynamoDB numbers hold 38 significant digits

ParentKey = tuple[str, Interval, int]
"""(symbol, parent interval, parent open time)."""


@dataclass(frozen=True, slots=True)
class DirtyMarker:
    """A parent candle to recompute; ``token`` changes on every mark (cleared only if unchanged)."""

    symbol: str
    interval: Interval
    open_time: int
    token: str


def child_interval(parent: Interval) -> Interval:
    try:
        return CHILD[parent]
    except KeyError:
        names = ", ".join(i.value for i in CHILD)
        raise ValueError(f"{parent.value} candles are not rolled up; use one of {names}") from None


def rollup(
    children: list[Candle], parent: Interval, previous_close: Decimal | None
) -> Candle | None:
    """The ``parent`` kline of ``children`` (one symbol, all inside one parent interval, any order).

    ``previous_close`` is the close of the parent kline before this one; it is used only when every
    child is empty. Returns None without children, or with only empty children and no previous close.
    """
    if not children:
        return None
    first = children[0]
    open_time = parent.floor(first.open_time)
    for c in children:
        if (c.symbol, c.interval, parent.floor(c.open_time)) != (
            first.symbol,
            child_interval(parent),
            open_time,
        ):
            raise ValueError(
                f"cannot roll {c.symbol} {c.interval.value} at {c.open_time} into the "
                f"{parent.value} kline of {first.symbol} at {open_time}"
            )
    traded = sorted((c for c in children if not c.is_empty), key=lambda c: c.open_time)
    if not traded:
        if previous_close is None:
            return None
        return empty_candle(first.symbol, parent, open_time, previous_close)
    total: Candle | None = None
    with localcontext() as exact:
        exact.prec = DECIMAL_DIGITS
        exact.traps[Inexact] = True
        for c in traded:
            total = merge(total, replace(c, interval=parent, open_time=open_time, version=0))
    return total


def same_kline(a: Candle, b: Candle) -> bool:
    """Equal in every stored field but the locking ``version``."""
    return a.with_version(0) == b.with_version(0)


def dirty_parents(candles: Iterable[Candle]) -> set[ParentKey]:
    """The parent candles to recompute after ``candles`` were written (1d candles have none)."""
    return {
        (c.symbol, PARENT[c.interval], PARENT[c.interval].floor(c.open_time))
        for c in candles
        if c.interval in PARENT
    }


def trailing_window(parent: Interval, now_ms: int, lookback: int) -> tuple[int, int]:
    """Open times of the current ``parent`` interval and the ``lookback`` ones before it."""
    current = parent.floor(now_ms)
    return current - lookback * parent.ms, current


def explicit_window(parent: Interval, start_ms: int, end_ms: int) -> tuple[int, int]:
    """Open times of the ``parent`` intervals that overlap ``start_ms``..``end_ms`` (inclusive)."""
    if end_ms < start_ms:
        raise ValueError("the rollup window ends before it starts")
    return parent.floor(start_ms), parent.floor(end_ms)


@dataclass(frozen=True, slots=True)
class RollupScope:
    """What a run recomputes at one level: the parents in ``window`` and the dirty ones.

    ``window`` holds inclusive parent open times (None: dirty parents only); only markers of
    parents opening in ``marker_range`` are consumed (None: every marker).
    """

    parent: Interval
    window: tuple[int, int] | None
    marker_range: tuple[int, int] | None


def rollup_scopes(
    interval: Interval, span: tuple[int, int] | None, now_ms: int, lookback: int
) -> list[RollupScope]:
    """The levels one run rolls up, finest first: ``interval``, then the dirty parents above it.

    A scheduled run (``span`` None) recomputes the trailing window (the current interval and
    ``lookback`` before it) and every dirty parent. A run over an explicit ``span`` (inclusive
    times) recomputes exactly the parents overlapping it, and clears only the markers inside it.
    Either way the coarser levels then recompute their dirty parents, which include the ones this
    run just marked, so a 1h run keeps the 1d candles current too.
    """
    child_interval(interval)  # only rolled-up intervals have scopes
    window = (
        explicit_window(interval, *span)
        if span is not None
        else trailing_window(interval, now_ms, lookback)
    )
    scopes = [RollupScope(interval, window, window if span is not None else None)]
    level = interval
    while level in PARENT:
        level = PARENT[level]
        scopes.append(
            RollupScope(level, None, explicit_window(level, *span) if span is not None else None)
        )
    return scopes


def plan_parents(
    parent: Interval,
    window: tuple[int, int] | None,
    markers: Iterable[DirtyMarker],
    symbols: Iterable[str],
) -> dict[str, list[int]]:
    """Open times to recompute per symbol, ascending: the window's and the dirty ones."""
    plan: dict[str, set[int]] = {s: set() for s in symbols}
    if window is not None:
        times = range(window[0], window[1] + 1, parent.ms)
        for s in plan:
            plan[s].update(times)
    for m in markers:
        if m.symbol in plan and m.interval is parent:
            plan[m.symbol].add(m.open_time)
    return {s: sorted(times) for s, times in plan.items() if times}


__all__ = [
    "CHILD",
    "PARENT",
    "DirtyMarker",
    "ParentKey",
    "RollupScope",
    "child_interval",
    "dirty_parents",
    "explicit_window",
    "plan_parents",
    "rollup",
    "rollup_scopes",
    "same_kline",
    "trailing_window",
]


def consecutive_runs(times: Iterable[int], step: int, max_len: int) -> list[list[int]]:
    """``times`` (ascending) cut into runs of consecutive ``step``-apart values, ``max_len`` at most.

    What one range read can serve without reading the candles between far-apart parents.
    """
    runs: list[list[int]] = []
    for t in times:
        if runs and t - runs[-1][-1] == step and len(runs[-1]) < max_len:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs
