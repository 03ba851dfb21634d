"""Prefect tasks of the rollup flow: plan, recompute parents from their stored children, clear markers.

A parent is always recomputed from *all* its stored children (never patched incrementally) and
written only when it differs from the stored one, conditionally on its ``version``; a lost race
re-reads the children and recomputes. The math lives in ``tasks.core.rollup``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.spec import resource_spec
from tasks.aws import dynamodb
from tasks.aws.clients import AwsClients
from tasks.core.keys import iso_time, market_id, parse_iso
from tasks.core.models import Candle, Interval
from tasks.core.rollup import (
    DirtyMarker,
    RollupScope,
    child_interval,
    consecutive_runs,
    plan_parents,
    rollup,
    same_kline,
)
from tasks.errors import ConfigError, ConflictError
from tasks.settings import Settings

MAX_CONFLICT_RETRIES = 20
# Parents whose children one query reads: 24 hours -> a day of minutes, 31 days -> 744 hours.
PREFETCH_PARENTS = 31


@dataclass(frozen=True)
class RollupContext:
    """What every task of one rollup run shares: settings, the candles table, clients."""

    settings: Settings
    table: str
    clients: AwsClients


@dataclass(frozen=True)
class RollupPlan:
    """The parents one level recomputes (per symbol, ascending) and the markers it then clears."""

    interval: Interval
    times: dict[str, list[int]]
    markers: tuple[DirtyMarker, ...]


@dataclass(frozen=True)
class RollupReport:
    checked: int = 0
    unchanged: int = 0
    without_children: int = 0
    markers_cleared: int = 0
    markers_kept: int = 0
    written: tuple[Candle, ...] = field(default=())

    def __add__(self, other: RollupReport) -> RollupReport:
        return RollupReport(
            self.checked + other.checked,
            self.unchanged + other.unchanged,
            self.without_children + other.without_children,
            self.markers_cleared + other.markers_cleared,
            self.markers_kept + other.markers_kept,
            self.written + other.written,
        )

    def summary(self) -> str:
        per_interval = {i.value: 0 for i in (Interval.H1, Interval.D1)}
        for c in self.written:
            per_interval[c.interval.value] += 1
        wrote = ", ".join(f"{n} {name}" for name, n in per_interval.items())
        return (
            f"{self.checked} parent candles checked: {len(self.written)} written ({wrote}), "
            f"{self.unchanged} unchanged, {self.without_children} without children; "
            f"{self.markers_cleared} dirty markers cleared, "
            f"{self.markers_kept} kept (marked again meanwhile)"
        )

    def markdown(self, title: str, max_rows: int = 100) -> str:
        """The summary and a table of the candles written (the first ``max_rows``)."""
        lines = [f"**{title}**: {self.summary()}"]
        if self.written:
            lines += [
                "",
                "| market | open time | open | high | low | close | volume | trades |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            lines += [
                f"| {market_id(c.symbol, c.interval)} | {iso_time(c.open_time)} | {c.open:f} | "
                f"{c.high:f} | {c.low:f} | {c.close:f} | {c.volume:f} | {c.trade_count} |"
                for c in self.written[:max_rows]
            ]
            if len(self.written) > max_rows:
                lines.append(f"\n... and {len(self.written) - max_rows} more")
        return "\n".join(lines)


def rollup_span(start: str | None, end: str | None, now_ms: int) -> tuple[int, int] | None:
    """The explicit window of a run (``end`` defaults to now), or None for a scheduled run."""
    if start is None and end is None:
        return None
    return time_window(start, end, now_ms, "rollup")


def time_window(start: str | None, end: str | None, now_ms: int, what: str) -> tuple[int, int]:
    """``start``..``end`` (ISO-8601, UTC when no zone is given) in ms; ``end`` defaults to now."""
    if start is None:
        raise ConfigError(f"a {what} window needs a start: give start (ISO-8601) with end")
    try:
        lo = parse_iso(start)
        hi = parse_iso(end) if end is not None else now_ms
    except ValueError as exc:
        raise ConfigError(f"{what} window: {exc}; use ISO-8601 like 2024-08-08T23:00:00Z") from None
    if hi < lo:
        raise ConfigError(f"{what} window ends ({end}) before it starts ({start})")
    return lo, hi


def lookback(settings: Settings, interval: Interval) -> int:
    if interval is Interval.D1:
        return settings.rollup_lookback_days
    return settings.rollup_lookback_hours


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def rollup_context(settings: Settings) -> RollupContext:
    return RollupContext(settings, resource_spec(settings).table.name, AwsClients())


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def plan_rollup(ctx: RollupContext, scope: RollupScope, symbols: list[str]) -> RollupPlan:
    """Read the dirty markers of the scope (before any child is read) and list the parents."""
    lo, hi = scope.marker_range or (None, None)
    markers = [
        m
        for m in dynamodb.dirty_markers(ctx.clients.dynamodb, ctx.table, scope.parent, lo, hi)
        if m.symbol in symbols
    ]
    times = plan_parents(scope.parent, scope.window, markers, symbols)
    get_run_logger().info(
        "%s: %d parent candle(s) to recompute over %d symbol(s), %d dirty",
        scope.parent.value,
        sum(len(t) for t in times.values()),
        len(times),
        len(markers),
    )
    return RollupPlan(scope.parent, times, tuple(markers))


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def roll_up(ctx: RollupContext, plan: RollupPlan) -> RollupReport:
    """Recompute every planned parent; write the ones that differ; mark their own parents dirty.

    Parents are computed in time order so an empty one carries the close just computed before it.
    A written parent is followed into the empty (or never written) parents after it that are not
    planned: those whose children are all empty klines are rewritten with the new close, until
    one is traded, unchanged or has no children. So a changed close travels through a gap.
    """
    logger = get_run_logger()
    report = RollupReport()
    computed: list[Candle] = []
    for symbol, times in plan.times.items():
        roller = _SymbolRoller(ctx, symbol, plan.interval)
        roller.prefetch(times)
        planned = set(times)
        for t in times:
            written = roller.roll(t)
            moment = t
            while written and moment + plan.interval.ms not in planned:
                moment += plan.interval.ms
                following = roller.peek(moment)
                if following is not None and not following.is_empty:
                    break
                written = roller.roll(moment, empty_only=True)
        report += roller.report
        computed += roller.computed
    # Every computed parent (written or not) marks its own parent: a crash between a write and its
    # mark is then repaired by the next run, which recomputes the same parents and marks again.
    dynamodb.mark_dirty(ctx.clients.dynamodb, ctx.table, computed)
    for c in report.written:
        logger.debug(
            "wrote %s %s %s close %s", c.symbol, c.interval.value, iso_time(c.open_time), c.close
        )
    logger.info("%s: %s", plan.interval.value, report.summary())
    return report


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def clear_markers(ctx: RollupContext, plan: RollupPlan) -> RollupReport:
    """Delete the plan's markers that nobody marked again since ``plan_rollup`` read them."""
    cleared = sum(dynamodb.clear_dirty(ctx.clients.dynamodb, ctx.table, m) for m in plan.markers)
    kept = len(plan.markers) - cleared
    if kept:
        get_run_logger().info(
            "%s: %d dirty marker(s) set again during the run; left for the next run",
            plan.interval.value,
            kept,
        )
    return RollupReport(markers_cleared=cleared, markers_kept=kept)


class _SymbolRoller:
    """Recomputes the parents of one symbol and level, remembering the closes it computed."""

    def __init__(self, ctx: RollupContext, symbol: str, interval: Interval) -> None:
        self.ctx, self.symbol, self.interval = ctx, symbol, interval
        self.child = child_interval(interval)
        self.closes: dict[int, Decimal] = {}
        self.computed: list[Candle] = []
        self.report = RollupReport()
        self._prefetched: dict[int, Candle | None] = {}
        self._children: dict[int, list[Candle]] = {}

    def prefetch(self, times: list[int]) -> None:
        """Read the stored parents of ``times`` in batches, and their children one query per run of
        consecutive parents (a day of minutes in one query, not 24): each is used once, by its roll.

        Reading the children here rather than in each roll is as fresh: the plan's markers were read
        before either, and a child written after this read marks its parent again.
        """
        keys = [(self.symbol, self.interval, t) for t in times]
        found = dynamodb.get_candles(self.ctx.clients.dynamodb, self.ctx.table, keys)
        self._prefetched = {k[2]: found.get(k) for k in keys}
        for run in consecutive_runs(times, self.interval.ms, PREFETCH_PARENTS):
            children: dict[int, list[Candle]] = {t: [] for t in run}
            for child in dynamodb.query_candles(
                self.ctx.clients.dynamodb,
                self.ctx.table,
                self.symbol,
                self.child,
                run[0],
                run[-1] + self.interval.ms - 1,
            ):
                children[self.interval.floor(child.open_time)].append(child)
            self._children.update(children)

    def peek(self, open_time: int) -> Candle | None:
        """The stored parent, kept for the roll that follows."""
        self._prefetched[open_time] = self.stored(open_time)
        return self._prefetched[open_time]

    def stored(self, open_time: int) -> Candle | None:
        if open_time in self._prefetched:
            return self._prefetched.pop(open_time)
        key = (self.symbol, self.interval, open_time)
        return dynamodb.get_candles(self.ctx.clients.dynamodb, self.ctx.table, [key]).get(key)

    def roll(self, open_time: int, *, empty_only: bool = False) -> bool:
        """Recompute one parent and write it if it differs (``empty_only``: only an empty kline).

        Returns whether it was written.
        """
        client, table = self.ctx.clients.dynamodb, self.ctx.table
        stored = self.stored(open_time)
        for _ in range(MAX_CONFLICT_RETRIES):
            children = self._children.pop(open_time, None)
            if children is None:  # not prefetched, or a lost race: read them now
                children = list(
                    dynamodb.query_candles(
                        client,
                        table,
                        self.symbol,
                        self.child,
                        open_time,
                        open_time + self.interval.ms - 1,
                    )
                )
            only_empty = bool(children) and all(c.is_empty for c in children)
            previous = self._previous_close(open_time) if only_empty else None
            candle = rollup(children, self.interval, previous)
            if candle is None or (empty_only and not candle.is_empty):
                if not empty_only:  # a probe past a gap that finds nothing to carry is not counted
                    self.report += RollupReport(checked=1, without_children=1)
                return False
            self.closes[open_time] = candle.close
            if stored is not None and same_kline(candle, stored):
                self.computed.append(stored)
                self.report += RollupReport(checked=1, unchanged=1)
                return False
            try:
                written = dynamodb.put_candle(
                    client, table, candle.with_version(stored.version if stored else 0)
                )
            except ConflictError:
                # Another run wrote it meanwhile: recompute from fresh children.
                stored = self.stored(open_time)
                continue
            self.computed.append(written)
            self.report += RollupReport(checked=1, written=(written,))
            return True
        raise ConflictError(
            f"gave up on {self.symbol} {self.interval.value} {iso_time(open_time)} after "
            f"{MAX_CONFLICT_RETRIES} conflicting writes"
        )

    def _previous_close(self, open_time: int) -> Decimal | None:
        """Close of the parent before, as computed in this run or stored; else of the last child."""
        before = open_time - self.interval.ms
        if before in self.closes:
            return self.closes[before]
        stored = self.stored(before)
        if stored is not None:
            return stored.close
        last = dynamodb.query_candles(
            self.ctx.clients.dynamodb,
            self.ctx.table,
            self.symbol,
            self.child,
            end_ms=open_time - 1,
            descending=True,
            limit=1,
        )
        return next((c.close for c in last), None)
