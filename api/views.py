"""What the API answers, built from stored items: pure functions, no I/O.

Prices and volumes stay exact: ``/candles`` gives them as decimal strings (as Binance's REST klines
do); the seed's ``/data`` records give numbers, written into the JSON as the stored decimal text
(``exact_json``), never through a binary float.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tasks.aws.alert_records import LoggedAlert
from tasks.core.gaps import Gap
from tasks.core.keys import iso_time, market_id
from tasks.core.models import Interval

Item = dict[str, Any]
_STATS = ("min", "q1", "median", "q3", "max")
_KLINE_DECIMALS = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


def _text(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["N"])


def _int(item: Item, name: str) -> int | None:
    value = item.get(name)
    return None if value is None else int(value["N"])


def is_kline(item: Item) -> bool:
    """Klines carry a ``version``; items with spread columns only do not."""
    return "version" in item


def spread_view(item: Item) -> dict[str, Any] | None:
    """The spread columns of an item, or None where the minute has no spread sample."""
    if "spread_sample_count" not in item:
        return None
    view: dict[str, Any] = {
        "samples": _int(item, "spread_sample_count"),
        "thin": _int(item, "spread_thin_count"),
    }
    view.update({name: _text(item, f"spread_{name}") for name in _STATS})
    view["bps"] = {name: _text(item, f"spread_bps_{name}") for name in _STATS}
    return view


def candle_view(
    item: Item, open_time: int, interval: Interval, gaps: Iterable[Gap]
) -> dict[str, Any]:
    """One candle of ``/candles``: the kline (or the mid price's OHLC where the market has no
    trades), whether an open gap overlaps it, and its spread columns."""
    close_time = open_time + interval.ms - 1
    view: dict[str, Any] = {"time": open_time // 1000, "open_time": iso_time(open_time)}
    if is_kline(item):
        view.update({name: _text(item, name) for name in ("open", "high", "low", "close")})
        view.update({name: _text(item, name) for name in _KLINE_DECIMALS})
        view["trade_count"] = _int(item, "trade_count")
        view["first_trade_id"] = _int(item, "first_trade_id")
        view["last_trade_id"] = _int(item, "last_trade_id")
    else:
        view.update({name: _text(item, f"mid_{name}") for name in ("open", "high", "low", "close")})
        view.update({name: None for name in _KLINE_DECIMALS})
        view.update(trade_count=None, first_trade_id=None, last_trade_id=None)
    view["complete"] = not any(g.overlaps(open_time, close_time) for g in gaps)
    view["spread"] = spread_view(item)
    return view


def drawable(item: Item) -> bool:
    """Whether an item has prices to draw: a kline, or spread columns with a mid price."""
    return is_kline(item) or "mid_open" in item


def seed_record(item: Item, market: str, interval: Interval) -> dict[str, Any]:
    """A record of the seed's ``GET /data/{marketid}``: ``{"marketid", "timestamp", "data"}``.

    ``data`` is ``[open, high, low, close]`` then, where the minute has spreads, the spread's
    ``[min, q1, median, q3, max]`` in price units, as the seed stored them. For markets without
    trades (spreads only) open..close are the mid price's, as the seed's scraper made them.
    """
    names = (
        ("open", "high", "low", "close")
        if is_kline(item)
        else ("mid_open", "mid_high", "mid_low", "mid_close")
    )
    data = [Decimal(item[name]["N"]) for name in names if name in item]
    if "spread_min" in item:
        data += [Decimal(item[f"spread_{name}"]["N"]) for name in _STATS]
    return {
        "marketid": market_id(market, interval),
        "timestamp": item["timestamp"]["S"],
        "data": data,
    }


def alert_view(logged: LoggedAlert) -> dict[str, Any]:
    m = logged.message
    return {
        "symbol": m.symbol,
        "rule": m.rule.value,
        "kind": m.kind,
        "severity": m.severity,
        "minute": iso_time(m.minute),
        "time": m.minute // 1000,
        "subject": m.subject,
        "published": logged.published_ms is not None,
    }


def _mark(value: object, mark: str) -> object:
    if isinstance(value, Decimal):
        return mark + format(value, "f")
    if isinstance(value, dict):
        return {k: _mark(v, mark) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(v, mark) for v in value]
    return value


def exact_json(value: object) -> bytes:
    """JSON with every ``Decimal`` written as a number with exactly its decimal digits.

    Decimals travel through ``json.dumps`` as strings behind a random mark, then lose their quotes.
    """
    mark = f"#{uuid.uuid4().hex}#"
    text = json.dumps(_mark(value, mark), separators=(",", ":"))
    return re.sub(f'"{mark}([-+0-9.Ee]+)"', r"\1", text).encode()
