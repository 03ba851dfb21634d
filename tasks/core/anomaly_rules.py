"""Anomaly rule configs: names, severities, the four rules' thresholds and windows, per-symbol overrides.

Every config validates itself (a nonsense value fails naming the field). ``RuleSet.overrides`` maps a
symbol to flat keys (``OVERRIDE_KEYS``), e.g. ``{"ETHUSDT": {"price_move_pct": "3",
"sma_crossover": true}}``, which is what a JSON settings field carries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_MINUTES = 1440  # no window or baseline longer than a day: the flow reads that much per run


class RuleName(enum.Enum):
    PRICE_MOVE = "price_move"
    VOLUME_SPIKE = "volume_spike"
    SMA_DIVERGENCE = "sma_divergence"
    SMA_CROSSOVER = "sma_crossover"
    STALE = "stale"

    @property
    def is_event(self) -> bool:
        """A crossover happens at one minute: there is no lasting condition whose end to announce."""
        return self is RuleName.SMA_CROSSOVER


class Severity(enum.Enum):
    WARNING = "warning"
    CRITICAL = "critical"  # the value is at least twice the threshold


def _validate(rule: object, **lowest: int) -> None:
    """Whole minutes in ``lowest``..MAX_MINUTES (1 unless given), positive finite Decimals, bools."""
    for f in fields(rule):  # type: ignore[arg-type]  # every rule config is a dataclass
        name, value = f"{type(rule).__name__}.{f.name}", getattr(rule, f.name)
        kind, low = type(f.default), lowest.get(f.name, 1)
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        if kind is int and (type(value) is not int or not low <= value <= MAX_MINUTES):
            raise ValueError(f"{name} must be a whole number of minutes in {low}..{MAX_MINUTES}")
        if kind is Decimal and not (isinstance(value, Decimal) and value.is_finite() and value > 0):
            raise ValueError(f"{name} must be a positive finite Decimal, not {value!r}")


@dataclass(frozen=True, slots=True)
class PriceMoveRule:
    """Fires when the close moved at least ``threshold_pct`` percent over ``window_minutes``."""

    window_minutes: int = 5
    threshold_pct: Decimal = Decimal("2")

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True, slots=True)
class VolumeSpikeRule:
    """Fires when the robust z-score of the minute's volume reaches ``threshold``.

    Evaluates only with at least ``min_baseline_minutes`` candles among the ``baseline_minutes``.
    """

    baseline_minutes: int = 60
    threshold: Decimal = Decimal("8")
    min_baseline_minutes: int = 30

    def __post_init__(self) -> None:
        _validate(self, baseline_minutes=3, min_baseline_minutes=3)
        if self.min_baseline_minutes > self.baseline_minutes:
            raise ValueError("VolumeSpikeRule.min_baseline_minutes must be <= baseline_minutes")


@dataclass(frozen=True, slots=True)
class SmaRule:
    """Short/long SMAs of closes: divergence of ``threshold_pct``; crossovers when ``crossover``.

    Crossovers are off by default: on 1m closes a 5/20 pair crosses many times a day.
    """

    short: int = 5
    long: int = 20
    threshold_pct: Decimal = Decimal("1")
    crossover: bool = False

    def __post_init__(self) -> None:
        _validate(self)
        if self.short >= self.long:
            raise ValueError("SmaRule.short must be less than SmaRule.long")


@dataclass(frozen=True, slots=True)
class StaleRule:
    """Fires when no trade is seen for more than ``max_silence_minutes``: the pipeline is down."""

    max_silence_minutes: int = 5

    def __post_init__(self) -> None:
        _validate(self)


# Flat override keys (a JSON settings field carries them per symbol) -> (RuleSet field, rule field).
_OVERRIDES = {
    "price_move_window_minutes": ("price_move", "window_minutes"),
    "price_move_pct": ("price_move", "threshold_pct"),
    "volume_baseline_minutes": ("volume_spike", "baseline_minutes"),
    "volume_min_baseline_minutes": ("volume_spike", "min_baseline_minutes"),
    "volume_threshold": ("volume_spike", "threshold"),
    "sma_short": ("sma", "short"),
    "sma_long": ("sma", "long"),
    "sma_divergence_pct": ("sma", "threshold_pct"),
    "sma_crossover": ("sma", "crossover"),
    "stale_minutes": ("stale", "max_silence_minutes"),
}
OVERRIDE_KEYS = tuple(_OVERRIDES)


def _coerce(key: str, raw: object, kind: type) -> object:
    """An override value (a JSON number, string or boolean) as the type of the field it sets."""
    text = str(raw).strip().lower() if isinstance(raw, int | float | str | Decimal) else ""
    if kind is bool and text in ("true", "false"):
        return text == "true"
    if kind is int and not isinstance(raw, bool) and text.isdigit():
        return int(text)
    if kind is Decimal and not isinstance(raw, bool) and text:
        with suppress(InvalidOperation):
            return Decimal(text)
    kinds = {bool: "true or false", int: "whole number"}
    raise ValueError(f"anomaly override {key}: {raw!r} is not a {kinds.get(kind, 'number')}")


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The four rule configs, and per-symbol overrides ``{symbol: {key: value}}`` (``OVERRIDE_KEYS``)."""

    price_move: PriceMoveRule = field(default_factory=PriceMoveRule)
    volume_spike: VolumeSpikeRule = field(default_factory=VolumeSpikeRule)
    sma: SmaRule = field(default_factory=SmaRule)
    stale: StaleRule = field(default_factory=StaleRule)
    overrides: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for symbol in self.overrides:
            self.for_symbol(symbol)  # a bad override fails when the settings are read

    def for_symbol(self, symbol: str) -> RuleSet:
        """The rules for ``symbol``: these configs with its overrides applied (and no overrides)."""
        return self.with_overrides(self.overrides.get(symbol, {}), symbol)

    def with_overrides(self, values: Mapping[str, object], symbol: str = "*") -> RuleSet:
        """These rules with flat overrides ``{key: value}`` applied; ``symbol`` names them in errors."""
        if not isinstance(values, Mapping):
            raise ValueError(f"anomaly overrides for {symbol} must map keys to values")
        changes: dict[str, dict[str, Any]] = {}
        for key, raw in values.items():
            if key not in _OVERRIDES:
                allowed = ", ".join(OVERRIDE_KEYS)
                raise ValueError(f"unknown anomaly override {key!r} for {symbol}; use {allowed}")
            group, name = _OVERRIDES[key]
            kind = type(getattr(getattr(self, group), name))
            changes.setdefault(group, {})[name] = _coerce(f"{symbol}.{key}", raw, kind)
        try:
            rules = {g: replace(getattr(self, g), **c) for g, c in changes.items()}
        except ValueError as e:
            raise ValueError(f"anomaly overrides for {symbol}: {e}") from None
        return replace(self, **rules, overrides={})

    @property
    def lookback_minutes(self) -> int:
        """How many minutes before the evaluated one the rules read (stale also needs the newest)."""
        return max(
            self.price_move.window_minutes, self.volume_spike.baseline_minutes, self.sma.long
        )
