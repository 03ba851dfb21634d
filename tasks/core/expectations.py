"""The trade expectation suite, as data. ``tasks/validate.py`` turns it into great-expectations objects.

Every expectation carries the reason written next to a rejected row, so a person reading the
quarantine knows what to fix in the producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DECIMAL_TEXT = r"^[0-9]{1,29}(\.[0-9]{1,8})?$"
INTEGER_TEXT = r"^[0-9]{1,19}$"
POSITIVE_TEXT = r"[1-9]"


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One expectation: its great-expectations class name, arguments, and the rejection reason."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def trade_suite(
    symbols: list[str], earliest_ms: int, latest_ms: int
) -> list[ExpectationSpec]:
    """Schema, types, positive price and quantity, known symbol, sane trade time."""
    required = [
        ExpectationSpec(
            "ExpectColumnValuesToNotBeNull", {"column": c}, f"field {c!r} is missing"
        )
        for c in ("e", "E", "s", "t", "p", "q", "T", "m")
    ]
    return [
        *required,
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": "e", "value_set": ["trade"]},
            "event type 'e' is not 'trade'",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": "s", "value_set": sorted(symbols)},
            f"unknown symbol (CANDLEFLOW_SYMBOLS is {','.join(symbols)})",
        ),
        *[
            ExpectationSpec(
                "ExpectColumnValuesToMatchRegex",
                {"column": c, "regex": INTEGER_TEXT},
                f"field {c!r} is not a non-negative integer",
            )
            for c in ("t", "T", "E")
        ],
        *[
            ExpectationSpec(
                "ExpectColumnValuesToMatchRegex",
                {"column": c, "regex": DECIMAL_TEXT},
                f"field {c!r} is not a decimal with at most 8 places",
            )
            for c in ("p", "q")
        ],
        ExpectationSpec(
            "ExpectColumnValuesToMatchRegex",
            {"column": "p", "regex": POSITIVE_TEXT},
            "price 'p' is not positive",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToMatchRegex",
            {"column": "q", "regex": POSITIVE_TEXT},
            "quantity 'q' is not positive",
        ),
        ExpectationSpec(
            "ExpectColumnValuesToBeInSet",
            {"column": "m", "value_set": ["true", "false"]},
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
