"""Anomaly rules over one symbol's recent 1m candles: pure, exact, one evaluated minute at a time.

``assess`` looks at the last complete minute before ``now_ms`` (``floor(now) - 1 min``) and runs:

- **price move**: close of that minute against the close ``window_minutes`` earlier, in percent;
- **volume spike**: the minute's volume as a robust z-score against the ``baseline_minutes`` before it
  (the evaluated minute excluded): ``(v - median) / (1.4826 * MAD)``. Median and MAD barely move when
  an earlier spike sits in the baseline, so one spike does not hide the next. When MAD is 0 the scale
  falls back to ``1.2533 * mean absolute deviation``, and it is never below ``SCALE_FLOOR`` (10%) of
  the median, so a flat baseline neither divides by zero nor turns every small change into an alert;
- **SMA divergence**: ``(sma_short - sma_long) / sma_long`` in percent, and, when enabled, **SMA
  crossover**: that difference goes from <= 0 to > 0 (or >= 0 to < 0) since the previous minute;
- **stale**: the newest traded minute ended more than ``max_silence_minutes`` before ``now_ms``.

Missing minutes carry the previous close, as Binance's empty klines do, but only inside the span
the candles cover: a minute after the newest candle is unknown (ingest may lag). The baseline uses
only minutes that have a candle (an empty kline counts as zero volume). A rule without enough
history is *skipped* with the reason, never fired: ``Assessment.skipped``, which the alert state
machine must treat as "not evaluated", not as "cleared".

Arithmetic is exact Decimal: sums and products of 8-place decimals never round; the few quotients
round at 38 significant digits (DynamoDB's number limit). Percentages are quantized only for display.

The rule configs and their per-symbol overrides live in ``tasks.core.anomaly_rules``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Context, Decimal, localcontext

from tasks.core.anomaly_rules import (
    OVERRIDE_KEYS,
    PriceMoveRule,
    RuleName,
    RuleSet,
    Severity,
    SmaRule,
    StaleRule,
    VolumeSpikeRule,
)
from tasks.core.models import ZERO, Candle, Interval

__all__ = [
    "MINUTE",
    "OVERRIDE_KEYS",
    "Assessment",
    "Finding",
    "PriceMoveRule",
    "RuleName",
    "RuleSet",
    "Severity",
    "SmaRule",
    "StaleRule",
    "VolumeSpikeRule",
    "assess",
    "evaluate",
]

MINUTE = Interval.M1.ms
SCALE_FLOOR = Decimal("0.1")  # the volume z-score's scale is at least 10% of the baseline median
_MAD_TO_SIGMA = Decimal("1.4826")
_MEAN_AD_TO_SIGMA = Decimal("1.2533")
_CONTEXT = Context(prec=38)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired for ``symbol`` at ``minute`` (open time, ms, of the evaluated 1m candle).

    ``value`` and ``threshold`` are in the rule's unit: percent (price move, SMA; signed, ``+`` is
    up), robust z (volume), minutes (stale); a crossover's threshold is 0. ``details`` holds the
    numbers a human needs, as text.
    """

    symbol: str
    rule: RuleName
    severity: Severity
    minute: int
    value: Decimal
    threshold: Decimal
    details: dict[str, str] = field(default_factory=dict)

    def subject(self) -> str:
        """A one-line human subject, at most 100 characters (SNS's limit)."""
        d, v, sev = self.details, self.value, self.severity.value
        up = v > 0
        if self.rule is RuleName.PRICE_MOVE:
            text = f"{'up' if up else 'down'} {abs(v):.2f}% in {d['window_minutes']} min"
        elif self.rule is RuleName.VOLUME_SPIKE:
            text = f"volume spike {d['volume']} vs median {d['median']} (z {v:.1f})"
        elif self.rule is RuleName.SMA_DIVERGENCE:
            side = "above" if up else "below"
            text = f"SMA{d['short']} {abs(v):.2f}% {side} SMA{d['long']}"
        elif self.rule is RuleName.SMA_CROSSOVER:
            text = f"SMA{d['short']} crossed {'above' if up else 'below'} SMA{d['long']}"
        else:
            text = f"stale: no trades for {v:.1f} min"
        return f"{self.symbol} {text} ({sev})"[:100]


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one evaluation found, and the rules it could not evaluate, with the reason."""

    findings: tuple[Finding, ...]
    skipped: dict[RuleName, str]


class _NotEnoughData(Exception):
    pass


def _at(minute: int) -> str:
    return datetime.fromtimestamp(minute // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


class _History:
    """One symbol's candles by minute; closes carry over missing minutes inside their span."""

    def __init__(self, symbol: str, candles: Iterable[Candle]) -> None:
        self.by_time: dict[int, Candle] = {}
        for c in candles:
            if c.symbol != symbol or c.interval is not Interval.M1:
                raise ValueError(f"expected 1m candles of {symbol}, got {c.symbol} {c.interval}")
            if self.by_time.setdefault(c.open_time, c) != c:
                raise ValueError(f"two different candles of {symbol} at {_at(c.open_time)}")
        self.times = sorted(self.by_time)

    def close(self, minute: int) -> Decimal:
        i = bisect_right(self.times, minute)
        if i == 0 or minute > self.times[-1]:
            raise _NotEnoughData(f"no close known at {_at(minute)}")
        return self.by_time[self.times[i - 1]].close


def _found(
    rule: RuleName, minute: int, value: Decimal, threshold: Decimal, details: dict[str, str]
) -> Finding:
    """A finding, critical when ``|value|`` is at least twice a non-zero ``threshold``."""
    critical = threshold and abs(value) >= 2 * threshold
    sev = Severity.CRITICAL if critical else Severity.WARNING
    return Finding("", rule, sev, minute, value, threshold, details)


def _median(values: list[Decimal]) -> Decimal:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _price_move(h: _History, minute: int, rule: PriceMoveRule) -> Finding | None:
    start = minute - rule.window_minutes * MINUTE
    old, new = h.close(start), h.close(minute)
    pct = (new - old) * 100 / old
    if abs(pct) < rule.threshold_pct:
        return None
    details = {"from": str(old), "to": str(new), "window_minutes": str(rule.window_minutes)}
    return _found(RuleName.PRICE_MOVE, minute, pct, rule.threshold_pct, details)


def _volume_spike(h: _History, minute: int, rule: VolumeSpikeRule) -> Finding | None:
    if minute not in h.by_time:
        raise _NotEnoughData(f"no candle at {_at(minute)}")
    volume = h.by_time[minute].volume
    start = minute - rule.baseline_minutes * MINUTE
    base = [h.by_time[t].volume for t in range(start, minute, MINUTE) if t in h.by_time]
    if len(base) < rule.min_baseline_minutes:
        raise _NotEnoughData(f"{len(base)} of {rule.min_baseline_minutes} baseline minutes")
    median = _median(base)
    mad = _median([abs(v - median) for v in base])
    scale = _MAD_TO_SIGMA * mad
    if mad == 0:
        scale = _MEAN_AD_TO_SIGMA * sum(abs(v - median) for v in base) / len(base)
    scale = max(scale, SCALE_FLOOR * median)
    if scale == 0:
        raise _NotEnoughData("the baseline has no volume at all")
    z = (volume - median) / scale
    if z < rule.threshold:
        return None
    details = {"volume": str(volume), "median": str(median), "mad": str(mad)}
    details |= {"scale": f"{scale:.8f}", "baseline_minutes": str(len(base))}
    return _found(RuleName.VOLUME_SPIKE, minute, z, rule.threshold, details)


def _sma_gap(h: _History, minute: int, rule: SmaRule) -> tuple[Decimal, Decimal]:
    """``(short_sum * long - long_sum * short, long_sum * short)``: their quotient is the gap
    of the two SMAs relative to the long one, and the first has its sign. No rounding."""
    closes = [h.close(minute - k * MINUTE) for k in range(rule.long)]
    short_sum, long_sum = sum(closes[: rule.short], ZERO), sum(closes, ZERO)
    return short_sum * rule.long - long_sum * rule.short, long_sum * rule.short


def _sma_details(num: Decimal, den: Decimal, rule: SmaRule) -> dict[str, str]:
    return {
        "short": str(rule.short),
        "long": str(rule.long),
        "sma_short": f"{(num + den) / rule.short / rule.long:.8f}",
        "sma_long": f"{den / rule.short / rule.long:.8f}",
    }


def _divergence(h: _History, minute: int, rule: SmaRule) -> Finding | None:
    num, den = _sma_gap(h, minute, rule)
    pct = num * 100 / den
    if abs(pct) < rule.threshold_pct:
        return None
    details = _sma_details(num, den, rule)
    return _found(RuleName.SMA_DIVERGENCE, minute, pct, rule.threshold_pct, details)


def _crossover(h: _History, minute: int, rule: SmaRule) -> Finding | None:
    num, den = _sma_gap(h, minute, rule)
    before, _ = _sma_gap(h, minute - MINUTE, rule)
    if not (before <= 0 < num or before >= 0 > num):
        return None
    details = _sma_details(num, den, rule)
    return _found(RuleName.SMA_CROSSOVER, minute, num * 100 / den, ZERO, details)


def _stale(h: _History, minute: int, now_ms: int, rule: StaleRule) -> Finding | None:
    if not h.times:
        raise _NotEnoughData("no candles at all")
    traded = [t for t in h.times if not h.by_time[t].is_empty]
    # Without a traded candle, the last trade came before the oldest (empty) one.
    since = traded[-1] + MINUTE if traded else h.times[0]
    silence = now_ms - since
    if silence <= rule.max_silence_minutes * MINUTE:
        return None
    details = {"last_trade_minute": _at(traded[-1]) if traded else "none read", "since": _at(since)}
    value, threshold = Decimal(silence) / MINUTE, Decimal(rule.max_silence_minutes)
    return _found(RuleName.STALE, minute, value, threshold, details)


def assess(symbol: str, candles: Iterable[Candle], now_ms: int, rules: RuleSet) -> Assessment:
    """Every rule on the last complete minute before ``now_ms``, given ``symbol``'s 1m candles.

    ``candles`` (traded and empty klines, any order, gaps allowed) should reach back
    ``rules.lookback_minutes`` before that minute and include the symbol's newest traded candle
    however old: without any candle there is nothing to call stale (a long outage would read as
    "no data"), so stale is then skipped.
    """
    minute = Interval.M1.floor(now_ms) - MINUTE
    h = _History(symbol, candles)
    checks: dict[RuleName, Callable[[], Finding | None]] = {
        RuleName.PRICE_MOVE: lambda: _price_move(h, minute, rules.price_move),
        RuleName.VOLUME_SPIKE: lambda: _volume_spike(h, minute, rules.volume_spike),
        RuleName.SMA_DIVERGENCE: lambda: _divergence(h, minute, rules.sma),
        RuleName.SMA_CROSSOVER: lambda: _crossover(h, minute, rules.sma),
        RuleName.STALE: lambda: _stale(h, minute, now_ms, rules.stale),
    }
    findings: list[Finding] = []
    skipped: dict[RuleName, str] = {}
    if not rules.sma.crossover:
        del checks[RuleName.SMA_CROSSOVER]
        skipped[RuleName.SMA_CROSSOVER] = "disabled (SmaRule.crossover)"
    with localcontext(_CONTEXT):
        for name, check in checks.items():
            try:
                found = check()
            except _NotEnoughData as e:
                skipped[name] = f"not enough data: {e}"
                continue
            if found is not None:
                findings.append(replace(found, symbol=symbol))
    return Assessment(tuple(findings), skipped)


def evaluate(symbol: str, candles: Iterable[Candle], now_ms: int, rules: RuleSet) -> list[Finding]:
    """The findings of ``assess``: what fired on the last complete minute before ``now_ms``."""
    return list(assess(symbol, candles, now_ms, rules).findings)
