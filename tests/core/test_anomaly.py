from __future__ import annotations

import json
import statistics
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core.alert_state import Action, AlertState, decide
from tasks.core.anomaly import (
    OVERRIDE_KEYS,
    SCALE_FLOOR,
    Finding,
    PriceMoveRule,
    RuleName,
    RuleSet,
    Severity,
    SmaRule,
    StaleRule,
    VolumeSpikeRule,
    assess,
    evaluate,
)
from tasks.core.candles import aggregate
from tasks.core.models import ZERO, Candle, Interval, empty_candle
from tests.builders import BASE_TIME, capture_trades, trades_frame

MINUTE = Interval.M1.ms
CAPTURES = (
    "spot_btcusdt_20240808.gz",
    "spot_btcusdt_20240809.gz",
    "spot_ethusdt_20240808.gz",
    "spot_ethusdt_20240809.gz",
)


def at(i: int) -> int:
    """Open time of minute ``i`` after BASE_TIME."""
    return BASE_TIME + i * MINUTE


def after(i: int) -> int:
    """The clock just after minute ``i`` ends: ``evaluate`` then looks at minute ``i``."""
    return at(i + 1)


def candle(i: int, close: object, volume: object = "1", symbol: str = "BTCUSDT") -> Candle:
    """A traded 1m candle at minute ``i`` with one trade (id ``i``) at ``close``."""
    p, v = Decimal(str(close)), Decimal(str(volume))
    t = at(i)
    return Candle(symbol, Interval.M1, t, p, p, p, p, v, p * v, 1, ZERO, ZERO, i, i, ((i, i),))


def series(closes: list[object], volumes: list[object] | None = None) -> list[Candle]:
    vols = volumes or ["1"] * len(closes)
    return [candle(i, c, v) for i, (c, v) in enumerate(zip(closes, vols, strict=True))]


def fired(findings: list[Finding], rule: RuleName) -> list[int]:
    return [f.minute for f in findings if f.rule is rule]


def pct(new: Decimal, old: Decimal) -> Fraction:
    return (Fraction(new) - Fraction(old)) * 100 / Fraction(old)


@cache
def capture_candles() -> dict[str, list[Candle]]:
    out: dict[str, list[Candle]] = {}
    for c in aggregate(trades_frame(capture_trades(*CAPTURES))):
        out.setdefault(c.symbol, []).append(c)
    return out


def run_minutes(symbol: str, candles: list[Candle], rules: RuleSet) -> list[Finding]:
    """Evaluate every minute the candles cover, each with only the candles stored by then."""
    out: list[Finding] = []
    for c in candles:
        now = c.open_time + MINUTE
        out += evaluate(symbol, [k for k in candles if k.open_time <= now], now, rules)
    return out


def test_the_real_captures_fire_nothing_at_the_default_thresholds() -> None:
    rules = RuleSet()
    for symbol, candles in capture_candles().items():
        minutes = [c.open_time for c in candles]
        assert run_minutes(symbol, candles, rules) == []
        # What could be evaluated on 12 minutes was: the price move from the 6th minute on, and
        # stale throughout; rules that need 20-60 minutes of history said so instead of firing.
        for m in minutes:
            skipped = assess(symbol, candles, m + MINUTE, rules).skipped
            assert (RuleName.PRICE_MOVE in skipped) is (m - 5 * MINUTE < minutes[0])
            assert RuleName.STALE not in skipped
            assert {RuleName.VOLUME_SPIKE, RuleName.SMA_DIVERGENCE} <= skipped.keys()
            assert skipped[RuleName.VOLUME_SPIKE].startswith("not enough data")


def test_a_jump_spliced_into_one_captured_minute_fires_price_move_for_that_minute_only() -> None:
    trades = capture_trades(*CAPTURES[:2])
    # 00:01. The spike also moves the close when it leaves the 5-minute window (at 00:06, past
    # the capture); a jump that holds is tested below.
    jump = BASE_TIME + 6 * MINUTE
    spliced = [
        replace(t, price=f"{(Decimal(t.price) * Decimal('1.05')).quantize(Decimal('1e-8'))}")
        if jump <= t.trade_time < jump + MINUTE
        else t
        for t in trades
    ]
    candles = aggregate(trades_frame(spliced))
    [finding] = run_minutes("BTCUSDT", candles, RuleSet())
    by_time = {c.open_time: c for c in candles}
    move = pct(by_time[jump].close, by_time[jump - 5 * MINUTE].close)
    assert (finding.rule, finding.minute) == (RuleName.PRICE_MOVE, jump)
    assert abs(Fraction(finding.value) - move) < Fraction(1, 10**30) and move > 4
    assert finding.severity is Severity.CRITICAL  # more than twice the 2% threshold
    shown = Decimal(move.numerator) / Decimal(move.denominator)
    assert finding.subject() == f"BTCUSDT up {shown:.2f}% in 5 min (critical)"
    assert finding.details["to"] == str(by_time[jump].close)


def test_a_held_jump_is_one_condition_for_the_window_and_gives_one_alert_and_one_clear() -> None:
    closes = [100] * 10 + [105] * 15
    candles = series(list(closes))
    state: AlertState | None = None
    actions = {}
    for m in range(5, len(closes)):
        found = [f for f in evaluate("BTCUSDT", candles, after(m), RuleSet()) if f.minute == at(m)]
        price = [f for f in found if f.rule is RuleName.PRICE_MOVE]
        assert bool(price) is (m - 5 < 10 <= m)  # the jump is inside the 5-minute window
        state, actions[m] = decide(state, price[0] if price else None, at(m), 60)
    assert {m: a for m, a in actions.items() if a is not Action.NOTHING} == {
        10: Action.ALERT,
        15: Action.CLEARED,
    }


def robust_z(volume: Decimal, baseline: list[Decimal]) -> Fraction:
    values = [Fraction(v) for v in baseline]
    median = statistics.median(values)
    mad = statistics.median([abs(v - median) for v in values])
    scale = max(Fraction("1.4826") * mad, Fraction(SCALE_FLOOR) * median)
    return (Fraction(volume) - median) / scale


def test_two_volume_spikes_ten_minutes_apart_both_fire() -> None:
    volumes = [Decimal(50 + i * 37 % 101) for i in range(80)]  # 50..150, MAD about 25
    volumes[65] = volumes[75] = Decimal(1000)
    candles = series([100] * 80, list(volumes))
    findings = [f for m in range(60, 80) for f in evaluate("BTCUSDT", candles, after(m), RuleSet())]
    assert fired(findings, RuleName.VOLUME_SPIKE) == [at(65), at(75)]
    first, second = findings
    # The first spike is in the second one's baseline and barely moves its median and MAD.
    assert abs(Fraction(first.value) - robust_z(volumes[65], volumes[5:65])) < Fraction(1, 10**20)
    assert abs(Fraction(second.value) - robust_z(volumes[75], volumes[15:75])) < Fraction(1, 10**20)
    assert second.value > first.value * Decimal("0.9")
    median, mad = Decimal(first.details["median"]), Decimal(first.details["mad"])
    assert Decimal("1.4826") * mad > SCALE_FLOOR * median  # the MAD sets the scale, not the floor
    assert {first.severity, second.severity} == {Severity.CRITICAL}
    assert second.subject().startswith("BTCUSDT volume spike 1000 vs median ")


def test_the_volume_baseline_needs_enough_minutes_and_a_flat_one_uses_the_floor() -> None:
    rule = VolumeSpikeRule(baseline_minutes=60, min_baseline_minutes=30)
    rules = RuleSet(volume_spike=rule)
    flat = [Decimal(10)] * 30
    # MAD is 0: the scale is the floor, a share of the median, so +80% is a z of exactly 8.
    edge = 10 + rule.threshold * SCALE_FLOOR * 10
    for volume, fires in [(edge - Decimal("0.01"), False), (edge, True)]:
        candles = series([1] * 31, [*flat, volume])
        assert bool(
            fired(evaluate("BTCUSDT", candles, after(30), rules), RuleName.VOLUME_SPIKE)
        ) is (fires)
    short = series([1] * 30, [*flat[:29], Decimal(10**6)])
    assert "29 of 30" in assess("BTCUSDT", short, after(29), rules).skipped[RuleName.VOLUME_SPIKE]
    silent = series([1] * 31, [*[ZERO] * 30, Decimal(5)])
    skipped = assess("BTCUSDT", silent, after(30), rules).skipped
    assert skipped[RuleName.VOLUME_SPIKE] == "not enough data: the baseline has no volume at all"


def test_when_mad_is_zero_the_mean_absolute_deviation_sets_the_scale() -> None:
    baseline = [Decimal(10)] * 40 + [ZERO] * 10  # median 10, MAD 0, mean |v - 10| = 2
    edge = 10 + 8 * Decimal("1.2533") * 2
    for volume, fires in [(edge - Decimal("0.001"), False), (edge, True)]:
        candles = series([1] * 51, [*baseline, volume])
        found = fired(evaluate("BTCUSDT", candles, after(50), RuleSet()), RuleName.VOLUME_SPIKE)
        assert bool(found) is fires


def reference_smas(closes: list[Fraction], m: int, short: int, long: int) -> Fraction:
    """(SMA short - SMA long) / SMA long in percent at minute ``m``."""
    s = sum(closes[m - short + 1 : m + 1]) / short
    lo = sum(closes[m - long + 1 : m + 1]) / long
    return (s - lo) * 100 / lo


def test_sma_divergence_and_crossover_fire_where_a_reference_computation_says() -> None:
    closes = [Fraction(100) + Fraction((i - 30) ** 2, 8) for i in range(60)]  # down, then up
    candles = series([Decimal(c.numerator) / c.denominator for c in closes])
    rule = SmaRule(short=5, long=20, threshold_pct=Decimal("1"), crossover=True)
    rules = RuleSet(sma=rule)
    findings = [f for m in range(20, 60) for f in evaluate("BTCUSDT", candles, after(m), rules)]
    gaps = {m: reference_smas(closes, m, 5, 20) for m in range(19, 60)}
    crosses = [at(m) for m in range(20, 60) if (gaps[m - 1] <= 0 < gaps[m])]
    assert len(crosses) == 1 and not any(gaps[m - 1] >= 0 > gaps[m] for m in range(20, 60))
    assert fired(findings, RuleName.SMA_CROSSOVER) == crosses
    diverged = [at(m) for m in range(20, 60) if abs(gaps[m]) >= 1]
    assert 0 < len(diverged) < 40
    assert fired(findings, RuleName.SMA_DIVERGENCE) == diverged
    [cross] = [f for f in findings if f.rule is RuleName.SMA_CROSSOVER]
    assert cross.subject() == "BTCUSDT SMA5 crossed above SMA20 (warning)"
    for f in findings:
        if f.rule is RuleName.SMA_DIVERGENCE:
            m = (f.minute - BASE_TIME) // MINUTE
            assert abs(Fraction(f.value) - gaps[m]) < Fraction(1, 10**30)
    # The same series without crossovers: the rule says it is disabled.
    skipped = assess("BTCUSDT", candles, after(40), RuleSet()).skipped
    assert skipped[RuleName.SMA_CROSSOVER].startswith("disabled")


def test_stale_fires_after_the_silence_and_not_before() -> None:
    rules = RuleSet(stale=StaleRule(max_silence_minutes=5))
    candles = series([1] * 10)  # trades up to minute 9, which ends at at(10)
    end = at(10)
    for now, fires in [(end + 5 * MINUTE, False), (end + 5 * MINUTE + 1, True)]:
        assert bool(fired(evaluate("BTCUSDT", candles, now, rules), RuleName.STALE)) is fires
    [late] = evaluate("BTCUSDT", candles, end + 10 * MINUTE + 30_000, rules)
    assert (late.minute, late.value, late.severity) == (at(19), Decimal("10.5"), Severity.CRITICAL)
    assert late.subject() == "BTCUSDT stale: no trades for 10.5 min (critical)"
    # Empty klines are no trades: the silence runs from the last traded minute's end.
    padded = candles + [empty_candle("BTCUSDT", Interval.M1, at(i), Decimal(1)) for i in (10, 11)]
    assert fired(evaluate("BTCUSDT", padded, end + 6 * MINUTE, rules), RuleName.STALE) == [at(15)]
    # Only empty klines read: no trade since the oldest of them, at least.
    only_empty = padded[-2:]
    assert fired(evaluate("BTCUSDT", only_empty, end + 5 * MINUTE, rules), RuleName.STALE) == []
    assert fired(evaluate("BTCUSDT", only_empty, end + 5 * MINUTE + 1, rules), RuleName.STALE)
    # No candles at all: nothing to say, and stale reports it could not be evaluated.
    assert assess("BTCUSDT", [], end + 60 * MINUTE, rules).findings == ()
    assert RuleName.STALE in assess("BTCUSDT", [], end + 60 * MINUTE, rules).skipped


def test_candles_of_another_symbol_or_two_versions_of_a_minute_are_refused() -> None:
    with pytest.raises(ValueError, match="1m candles of BTCUSDT"):
        evaluate("BTCUSDT", [candle(0, 1, symbol="ETHUSDT")], after(0), RuleSet())
    with pytest.raises(ValueError, match="two different candles"):
        evaluate("BTCUSDT", [candle(0, 1), candle(0, 2)], after(0), RuleSet())


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PriceMoveRule(window_minutes=0), "PriceMoveRule.window_minutes"),
        (lambda: PriceMoveRule(threshold_pct=Decimal("NaN")), "PriceMoveRule.threshold_pct"),
        (lambda: PriceMoveRule(threshold_pct=Decimal(-1)), "PriceMoveRule.threshold_pct"),
        (lambda: VolumeSpikeRule(baseline_minutes=2), "VolumeSpikeRule.baseline_minutes"),
        (lambda: VolumeSpikeRule(min_baseline_minutes=61), "VolumeSpikeRule.min_baseline_minutes"),
        (lambda: SmaRule(short=20, long=20), "SmaRule.short"),
        (lambda: SmaRule(long=10**6), "SmaRule.long"),
        (lambda: StaleRule(max_silence_minutes=True), "StaleRule.max_silence_minutes"),
    ],
)
def test_nonsense_rule_settings_are_refused_naming_the_field(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=field):
        make()


def test_per_symbol_overrides_from_a_json_setting() -> None:
    raw = '{"ETHUSDT": {"price_move_pct": 3.5, "sma_crossover": true, "stale_minutes": "10"}}'
    rules = RuleSet(overrides=json.loads(raw))
    eth = rules.for_symbol("ETHUSDT")
    assert eth.price_move == PriceMoveRule(threshold_pct=Decimal("3.5"))
    assert eth.sma == SmaRule(crossover=True) and eth.stale == StaleRule(10)
    assert rules.for_symbol("BTCUSDT") == RuleSet()
    assert RuleSet().lookback_minutes == 60
    with pytest.raises(ValueError, match="'price_pct' for ETHUSDT; use price_move_window") as e:
        RuleSet(overrides={"ETHUSDT": {"price_pct": "3"}})
    assert all(key in str(e.value) for key in OVERRIDE_KEYS)
    with pytest.raises(ValueError, match=r"ETHUSDT\.stale_minutes: '5\.5' is not a whole number"):
        RuleSet(overrides={"ETHUSDT": {"stale_minutes": "5.5"}})
    with pytest.raises(
        ValueError, match=r"ETHUSDT: SmaRule\.short must be less than SmaRule\.long"
    ):
        RuleSet(overrides={"ETHUSDT": {"sma_short": 30}})
    with pytest.raises(ValueError, match="is not a number"):
        RuleSet(overrides={"ETHUSDT": {"volume_threshold": "lots"}})
    with pytest.raises(ValueError, match="for ETHUSDT must map keys to values"):
        RuleSet(overrides={"ETHUSDT": 3})


@st.composite
def histories(draw: st.DrawFn) -> list[Candle]:
    """Up to 40 minutes of a symbol: traded candles, empty klines and missing minutes."""
    out: list[Candle] = []
    close = Decimal(100)
    for i in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["traded", "traded", "traded", "empty", "missing"]))
        if kind == "traded" or not out:
            close = draw(st.decimals("90", "110", places=2))
            out.append(candle(i, close, draw(st.decimals("0", "50", places=3))))
        elif kind == "empty":
            out.append(empty_candle("BTCUSDT", Interval.M1, at(i), close))
    return out


@st.composite
def sensitive_rules(draw: st.DrawFn) -> RuleSet:
    """Low thresholds and short windows, so that the small histories fire often."""
    short = draw(st.integers(1, 4))
    return RuleSet(
        PriceMoveRule(draw(st.integers(1, 6)), draw(st.decimals("0.1", "5", places=1))),
        VolumeSpikeRule(draw(st.integers(5, 15)), draw(st.decimals("0.5", "4", places=1)), 3),
        SmaRule(short, draw(st.integers(short + 1, 10)), Decimal("0.5"), crossover=True),
        StaleRule(draw(st.integers(1, 4))),
    )


def essence(findings: list[Finding]) -> list[tuple[object, ...]]:
    return [(f.rule, f.severity, f.minute, f.value, f.threshold) for f in findings]


@given(histories(), sensitive_rules(), st.decimals("0.001", "1000", places=3), st.randoms())
@settings(max_examples=80, deadline=None)
def test_scaling_prices_or_shuffling_candles_changes_no_finding(
    candles: list[Candle], rules: RuleSet, factor: Decimal, rnd: object
) -> None:
    import random

    assert isinstance(rnd, random.Random) and factor > 0
    scaled = [
        replace(
            c,
            open=c.open * factor,
            high=c.high * factor,
            low=c.low * factor,
            close=c.close * factor,
        )
        for c in candles
    ]
    shuffled = rnd.sample(candles, len(candles))
    for m in range(0, 45):
        found = evaluate("BTCUSDT", candles, after(m), rules)
        assert essence(evaluate("BTCUSDT", scaled, after(m), rules)) == essence(found)
        assert evaluate("BTCUSDT", shuffled, after(m), rules) == found
        assert all(len(f.subject()) <= 100 and f.minute == at(m) for f in found)


def finding_at(minute: int) -> Finding:
    return Finding("BTCUSDT", RuleName.STALE, Severity.WARNING, minute, Decimal(6), Decimal(5))


def run_decisions(
    steps: list[tuple[int, bool]], cooldown: int, state: AlertState | None = None
) -> tuple[AlertState | None, list[Action]]:
    actions = []
    for minute, present in steps:
        state, action = decide(state, finding_at(minute) if present else None, minute, cooldown)
        actions.append(action)
    return state, actions


conditions = st.lists(st.tuples(st.integers(1, 3), st.booleans()), max_size=60)


def timeline(gaps_and_flags: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
    """Evaluated minutes (open times, rising by 1-3 minutes) with whether the condition holds."""
    minutes = [at(sum(g for g, _ in gaps_and_flags[: k + 1])) for k in range(len(gaps_and_flags))]
    return [(m, p) for m, (_, p) in zip(minutes, gaps_and_flags, strict=True)]


@given(conditions, st.integers(1, 6))
def test_alerts_are_activations_plus_spaced_reminders_and_each_run_clears_once(
    flags: list[tuple[int, bool]], cooldown: int
) -> None:
    steps = timeline(flags)
    state, actions = run_decisions(steps, cooldown)
    runs: list[list[int]] = []  # the minutes of each stretch where the condition held
    for k, (minute, present) in enumerate(steps):
        if present:
            if k == 0 or not steps[k - 1][1]:
                runs.append([])
            runs[-1].append(minute)
    alerts = [m for (m, _), a in zip(steps, actions, strict=True) if a is Action.ALERT]
    cleared = [m for (m, _), a in zip(steps, actions, strict=True) if a is Action.CLEARED]
    expected_alerts: list[int] = []
    for run in runs:
        expected_alerts.append(run[0])  # the activation edge
        for m in run[1:]:  # reminders: the first minute at least a cooldown after the last publish
            if m - expected_alerts[-1] >= cooldown * MINUTE:
                expected_alerts.append(m)
    assert alerts == expected_alerts
    # Each run that ended is cleared exactly once, at the first minute without the condition.
    minutes = [m for m, _ in steps]
    ends = [minutes[minutes.index(run[-1]) + 1] for run in runs if run[-1] != minutes[-1]]
    assert cleared == ends
    if steps:
        assert state is not None and state.active is steps[-1][1]


@given(conditions, st.integers(1, 6), st.data())
def test_replaying_any_prefix_of_minutes_changes_nothing(
    flags: list[tuple[int, bool]], cooldown: int, data: st.DataObject
) -> None:
    steps = timeline(flags)
    _, straight = run_decisions(steps, cooldown)
    cut = data.draw(st.integers(0, len(steps)))
    state, before = run_decisions(steps[:cut], cooldown)
    if state is not None:
        replay = data.draw(st.lists(st.booleans(), min_size=cut, max_size=cut))
        again, actions = run_decisions(
            [(m, p) for (m, _), p in zip(steps[:cut], replay, strict=True)], cooldown, state
        )
        assert again == state and set(actions) <= {Action.NOTHING}
    _, rest = run_decisions(steps[cut:], cooldown, state)
    assert before + rest == straight


def test_an_event_rule_goes_quiet_without_a_cleared_message() -> None:
    state, first = decide(None, finding_at(at(0)), at(0), 5, announce_clear=False)
    state, second = decide(state, None, at(1), 5, announce_clear=False)
    assert (first, second, state.active) == (Action.ALERT, Action.NOTHING, False)
    assert decide(state, finding_at(at(2)), at(2), 5)[1] is Action.ALERT
    assert RuleName.SMA_CROSSOVER.is_event and not RuleName.PRICE_MOVE.is_event
    with pytest.raises(ValueError, match="cooldown_minutes"):
        decide(None, None, at(0), 0)
    with pytest.raises(ValueError, match="the finding is for minute"):
        decide(None, finding_at(at(1)), at(0), 5)
