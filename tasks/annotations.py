"""Handing large values to Prefect tasks without Prefect walking them.

Prefect visits every task argument recursively (looking for futures and states to wait on and to
record as upstream inputs), into every list, dict and dataclass. A backfilled day hands ~1,440
candles to a task several times; walking them cost ~3.5 s of the 1M-trade rebuild's CPU
(cProfile of ``candleflow bench --phases rebuild --profile``). ``as_is`` wraps a value in Prefect's
``quote``: the task receives the value itself, unwalked. Only for values that hold no futures.
"""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.utilities.annotations import quote

T = TypeVar("T")


def as_is(value: T) -> T:
    """``value``, marked for Prefect to pass to the task as it is (typed as the value for mypy)."""
    return cast(T, quote(value))
