"""The spread sampler -> pipeline contract: one spread sample per NDJSON line. Pure: no I/O.

The sampler (``producer.spreads``) sends one SQS message per tick holding every market's sample, a
line each, encoded like trade bodies (``tasks.core.contract``: plain NDJSON, or base64 of gzip with
``content-encoding=gzip``). A line is one compact JSON object, keys in this order::

    {"market":"BTCUSDT","venue":"binance","ts_ms":1723161255408,"source_id":50093239224,
     "notional":"10000","mid":"61837.635","best_bid":"61837.63000000","best_ask":"61837.64000000",
     "buy_avg_price":"61837.64032218...","sell_avg_price":"61837.6299...","spread":"0.0103...",
     "spread_bps":"0.00166...","filled_fraction":"1","thin":false}

(one line on the wire). Fields are those of ``tasks.core.spreads.SpreadSample`` plus:

- ``venue``: ``"binance"`` (``market`` a symbol like ``BTCUSDT``) or ``"btcmarkets"`` (``BTC-AUD``);
- ``ts_ms``: when the venue saw the book, ms since the epoch: for Binance the event time ``E`` of the
  depth update that brought the book to its update id (the last one applied); for BTCMarkets the
  ``snapshotId`` (µs) in ms, or the time the answer was received when the snapshotId does not read
  as a time within a day of it (see ``producer.books``);
- ``source_id``: the book's Binance update id (the ``u`` of that last update), or the BTCMarkets
  ``snapshotId``. A book unchanged between two ticks gives two samples with the same ``source_id``.

Decimals are strings in plain notation (``"0.00012"``, never ``"1.2E-4"``), exact as sampled; an
absent value (``mid`` of a book with an empty side, averages and spreads of a thin sample) is
``null``. ``parse_sample_line`` is strict: anything else raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Final

from tasks.core.spreads import SpreadSample

VENUES: Final = ("binance", "btcmarkets")
FIELDS: Final = (
    "market",
    "venue",
    "ts_ms",
    "source_id",
    "notional",
    "mid",
    "best_bid",
    "best_ask",
    "buy_avg_price",
    "sell_avg_price",
    "spread",
    "spread_bps",
    "filled_fraction",
    "thin",
)
_MARKET = {
    "binance": re.compile(r"[A-Z0-9]{2,20}"),
    "btcmarkets": re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}"),
}
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ONE = Decimal(1)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def sample_line(sample: SpreadSample, venue: str, source_id: int) -> bytes:
    """``sample`` as one contract line (no trailing newline); see the module docstring."""
    if venue not in VENUES:
        raise ValueError(f"venue must be one of {VENUES}, got {venue!r}")
    if source_id < 0:
        raise ValueError(f"source_id must be >= 0, got {source_id}")
    fields: dict[str, object] = {
        "market": sample.market,
        "venue": venue,
        "ts_ms": sample.ts_ms,
        "source_id": source_id,
        "notional": _text(sample.notional),
        "mid": _text(sample.mid),
        "best_bid": _text(sample.best_bid),
        "best_ask": _text(sample.best_ask),
        "buy_avg_price": _text(sample.buy_avg_price),
        "sell_avg_price": _text(sample.sell_avg_price),
        "spread": _text(sample.spread),
        "spread_bps": _text(sample.spread_bps),
        "filled_fraction": _text(sample.filled_fraction),
        "thin": sample.thin,
    }
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


class _Line:
    """Typed access to one decoded line; every error names the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def integer(self, key: str) -> int:
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"spread sample field {key!r} must be an integer >= 0, got {value!r}")
        return value

    def decimal(self, key: str, *, positive: bool = False) -> Decimal | None:
        value = self.data[key]
        if value is None:
            return None
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            raise ValueError(
                f'spread sample field {key!r} must be a decimal string like "61837.63" or null, '
                f"got {value!r:.100}"
            )
        number = Decimal(value)
        if positive and not number > 0:
            raise ValueError(f"spread sample field {key!r} must be > 0, got {value!r}")
        return number

    def required(self, key: str, *, positive: bool = False) -> Decimal:
        number = self.decimal(key, positive=positive)
        if number is None:
            raise ValueError(f"spread sample field {key!r} must not be null")
        return number


def parse_sample_line(line: bytes) -> tuple[SpreadSample, str, int]:
    """(sample, venue, source_id) of one contract line; ``ValueError`` naming the field if bad."""
    try:
        data = json.loads(line)
    except ValueError as exc:  # also bad UTF-8
        raise ValueError(f"a spread sample line must be one JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"a spread sample line must be a JSON object, got {line[:100]!r}")
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise ValueError(f"spread sample lacks field(s) {', '.join(map(repr, missing))}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValueError(f"spread sample has unknown field(s) {', '.join(map(repr, unknown))}")
    fields = _Line(data)
    venue = data["venue"]
    if venue not in VENUES:
        raise ValueError(f"spread sample field 'venue' must be one of {VENUES}, got {venue!r}")
    market = data["market"]
    if not isinstance(market, str) or not _MARKET[venue].fullmatch(market):
        example = "BTCUSDT" if venue == "binance" else "BTC-AUD"
        raise ValueError(
            f"spread sample field 'market' must be a {venue} market like {example}, got {market!r}"
        )
    thin = data["thin"]
    if not isinstance(thin, bool):
        raise ValueError(f"spread sample field 'thin' must be true or false, got {thin!r}")
    sample = SpreadSample(
        market=market,
        ts_ms=fields.integer("ts_ms"),
        mid=fields.decimal("mid", positive=True),
        best_bid=fields.decimal("best_bid", positive=True),
        best_ask=fields.decimal("best_ask", positive=True),
        notional=fields.required("notional", positive=True),
        buy_avg_price=fields.decimal("buy_avg_price", positive=True),
        sell_avg_price=fields.decimal("sell_avg_price", positive=True),
        spread=fields.decimal("spread"),
        spread_bps=fields.decimal("spread_bps"),
        filled_fraction=fields.required("filled_fraction"),
        thin=thin,
    )
    _check_consistent(sample)
    return sample, venue, fields.integer("source_id")


def _check_consistent(s: SpreadSample) -> None:
    """What ``tasks.core.spreads.sample`` guarantees, so a corrupt line cannot pass for a sample."""
    if not 0 <= s.filled_fraction <= _ONE:
        raise ValueError(
            f"spread sample field 'filled_fraction' must be in [0, 1], got {s.filled_fraction}"
        )
    if (s.mid is None) != (s.best_bid is None or s.best_ask is None):
        raise ValueError(
            "spread sample field 'mid' must be null exactly when 'best_bid' or 'best_ask' is"
        )
    if s.best_bid is not None and s.best_ask is not None and s.best_bid >= s.best_ask:
        raise ValueError(
            f"spread sample field 'best_bid' ({s.best_bid}) must be below 'best_ask' "
            f"({s.best_ask}): a crossed book is never sampled"
        )
    values = {
        "buy_avg_price": s.buy_avg_price,
        "sell_avg_price": s.sell_avg_price,
        "spread": s.spread,
        "spread_bps": s.spread_bps,
    }
    if s.thin:
        present = [k for k, v in values.items() if v is not None]
        if present:
            raise ValueError(f"spread sample field {present[0]!r} must be null when 'thin' is true")
        return
    absent = [k for k, v in values.items() if v is None]
    if absent or s.mid is None:
        key = absent[0] if absent else "mid"
        raise ValueError(f"spread sample field {key!r} must not be null when 'thin' is false")
    if s.filled_fraction != _ONE:
        raise ValueError(
            "spread sample field 'filled_fraction' must be 1 when 'thin' is false, "
            f"got {s.filled_fraction}"
        )
