"""The trade expectation suite, as data. ``tasks/validate.py`` turns it into great-expectations objects.

Every expectation carries the reason written next to a rejected row, so a person reading the
quarantine knows what to fix in the producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The lake holds prices and quantities as Decimal(38, 8) and their product, the quote quantity, as
# Decimal(38, 16), which has 22 integer digits: below 10^11 each, every product fits. A line beyond
# the schema is rejected here with its reason rather than failing the whole batch later.
DECIMAL_TEXT = r"^[0-9]{1,11}(?:\.[0-9]{1,8})?$"
# Trade ids and times are Int64: 18 digits always fit.
INTEGER_TEXT = r"^[0-9]{1,18}$"
POSITIVE_TEXT = r"[1-9]"

# Columns as great-expectations sees them: it matches column names case-insensitively, so Binance's
# one-letter fields (t and T, e and E) get descriptive names. Reasons still name the wire field.
COLUMNS = {
    "e": "event_type",
    "E": "event_time",
    "s": "symbol",
    "t": "trade_id",
    "p": "price",
    "q": "quantity",
    "T": "trade_time",
    "m": "is_buyer_maker",
}


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation: its great-expectations class name, arguments, and the rejection reason."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def trade_suite(symbols: list[str], earliest_ms: int, latest_ms: int) -> list[ExpectationSpec]:
    """Schema, types, positive price and quantity, known symbol, sane trade time."""
    required = [
        ExpectationSpec(
            "ExpectColumnValuesToNotBeNull",
            {"column": COLUMNS[c]},
            f"field {c!r} is missing",
        )
        for c in COLUMNS
    ]
    return [
        *required,
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": COLUMNS["e"], "value_set": ["trade"]},
            "event type 'e' is not 'trade'",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": COLUMNS["s"], "value_set": sorted(symbols)},
            f"unknown symbol (CANDLEFLOW_SYMBOLS is {','.join(symbols)})",
        ),
        *[
            ExpectationSpec(
                "ExpectColumnValuesToMatchRegex",
                {"column": COLUMNS[c], "regex": INTEGER_TEXT},
                f"field {c!r} is not a non-negative integer of at most 18 digits",
            )
            for c in ("t", "T", "E")
        ],
        *[
            ExpectationSpec(
                "ExpectColumnValuesToMatchRegex",
                {"column": COLUMNS[c], "regex": DECIMAL_TEXT},
                f"field {c!r} is not a decimal below 10^11 with at most 8 places",
            )
            for c in ("p", "q")
        ],
        ExpectationSpec(
            "ExpectColumnValuesToMatchRegex",
            {"column": COLUMNS["p"], "regex": POSITIVE_TEXT},
            "price 'p' is not positive",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToMatchRegex",
            {"column": COLUMNS["q"], "regex": POSITIVE_TEXT},
            "quantity 'q' is not positive",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": COLUMNS["m"], "value_set": ["true", "false"]},
            "field 'm' is not a boolean",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "trade_time_ms",
                "min_value": earliest_ms,
                "max_value": latest_ms,
            },
            "trade time 'T' is not sane (before CANDLEFLOW_EARLIEST_TRADE_TIME or further in the "
            "future than CANDLEFLOW_MAX_FUTURE_SKEW_S)",
        ),
    ]
