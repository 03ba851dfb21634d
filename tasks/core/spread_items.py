"""Spread candles as DynamoDB attributes: the seed's ``data`` array, named fields, the raw samples.

A 1m and a 1h item keep the raw samples of their interval (``spread_samples``, one ``ts,mid,spread,
bps,thin`` group per sample, ``;``-separated, empty for None), so each interval's statistics come from
its pooled raw samples: a 1m item's from its own, a 1h item's from its 60 minutes', a 1d item's from
its 24 hours' (a day at one sample per 5 s, ~17,000 samples, would not fit DynamoDB's 400 KB item, so
1d items keep the statistics only). Samples merge by observation time, so every write is idempotent.

For the seed's API clients an item also has ``data`` = ``[open, high, low, close, min, q1, q2, q3,
max]`` (mid-price OHLC, spread quartiles in price units), absent when no sample of the interval was
priced (all thin).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tasks.core.spreads import SpreadCandle, SpreadSample, seed_data

ZERO = Decimal(0)
ONE = Decimal(1)


def _text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def samples_text(samples: Iterable[SpreadSample]) -> str:
    """The samples by time, ``ts,mid,spread,bps,thin`` each."""
    return ";".join(
        f"{s.ts_ms},{_text(s.mid)},{_text(s.spread)},{_text(s.spread_bps)},{int(s.thin)}"
        for s in sorted(samples, key=lambda s: s.ts_ms)
    )


def _decimal(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def parse_samples_text(market: str, text: str) -> list[SpreadSample]:
    """Stored samples: the fields the statistics use (book prices and averages are not kept)."""
    out = []
    for group in filter(None, text.split(";")):
        ts, mid, spread, bps, thin = group.split(",")
        out.append(
            SpreadSample(
                market=market,
                ts_ms=int(ts),
                mid=_decimal(mid),
                best_bid=None,
                best_ask=None,
                notional=ZERO,
                buy_avg_price=None,
                sell_avg_price=None,
                spread=_decimal(spread),
                spread_bps=_decimal(bps),
                filled_fraction=ZERO if thin == "1" else ONE,
                thin=thin == "1",
            )
        )
    return out


def merge_samples(
    stored: Iterable[SpreadSample], new: Iterable[SpreadSample]
) -> list[SpreadSample]:
    """The union by observation time (a redelivered sample is the same sample), by time."""
    by_time = {s.ts_ms: s for s in stored}
    for s in new:
        by_time.setdefault(s.ts_ms, s)
    return [by_time[t] for t in sorted(by_time)]


def _number(value: Decimal) -> dict[str, str]:
    return {"N": format(value, "f") if value else "0"}


def spread_attributes(candle: SpreadCandle) -> dict[str, Any]:
    """The candle's named spread columns and the seed's ``data`` array, as attribute values."""
    attrs: dict[str, Any] = {
        "spread_sample_count": {"N": str(candle.sample_count)},
        "spread_thin_count": {"N": str(candle.thin_count)},
    }
    if candle.mid is not None:
        for name in ("open", "high", "low", "close"):
            attrs[f"mid_{name}"] = _number(getattr(candle.mid, name))
    for prefix, stats in (("spread", candle.spread), ("spread_bps", candle.spread_bps)):
        if stats is not None:
            for name in ("min", "q1", "median", "q3", "max"):
                attrs[f"{prefix}_{name}"] = _number(getattr(stats, name))
    data = seed_data(candle)
    if data is not None:
        attrs["data"] = {"L": [_number(v) for v in data]}
    return attrs
