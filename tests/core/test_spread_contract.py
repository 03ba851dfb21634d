from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.orderbook import Book
from tasks.core.spread_contract import FIELDS, parse_sample_line, sample_line
from tasks.core.spreads import SpreadSample, sample

LADDER = Book(
    [(Decimal("99"), Decimal("1")), (Decimal("98"), Decimal("2"))],
    [(Decimal("100.0"), Decimal("1")), (Decimal("101"), Decimal("2"))],
)
TS_MS = 1_723_161_255_408


def line_with(**changes: Any) -> bytes:
    """A valid line of a full sample with some fields changed (``None`` writes null)."""
    data = json.loads(sample_line(sample("BTC-AUD", LADDER, Decimal(150), TS_MS), "btcmarkets", 7))
    data.update(changes)
    return json.dumps(data).encode()


def without(key: str) -> bytes:
    data = json.loads(line_with())
    del data[key]
    return json.dumps(data).encode()


# --- the format ----------------------------------------------------------------------------------


def test_a_sample_is_one_compact_json_line_with_decimal_strings_in_plain_notation() -> None:
    taken = sample("BTC-AUD", LADDER, Decimal(150), TS_MS)
    line = sample_line(taken, "btcmarkets", 1_723_161_255_408_000)
    assert line == (
        b'{"market":"BTC-AUD","venue":"btcmarkets","ts_ms":1723161255408,'
        b'"source_id":1723161255408000,"notional":"150","mid":"99.5","best_bid":"99",'
        b'"best_ask":"100.0","buy_avg_price":"100.33112582781456953642384105960264901",'
        b'"sell_avg_price":"98.657718120805369127516778523489932886",'
        b'"spread":"1.673407707009200408907062536112716124",'
        b'"spread_bps":"168.18167909640205114643844584047398231","filled_fraction":"1",'
        b'"thin":false}'
    )
    assert parse_sample_line(line) == (taken, "btcmarkets", 1_723_161_255_408_000)


def test_a_thin_sample_writes_null_for_what_it_has_not() -> None:
    taken = sample("ETHUSDT", Book([], [(Decimal("2683.81"), Decimal("0.5"))]), Decimal(10), 1)
    data = json.loads(sample_line(taken, "binance", 35346513512))
    assert data["thin"] is True and data["filled_fraction"] == "0"
    assert [k for k, v in data.items() if v is None] == [
        "mid",
        "best_bid",
        "buy_avg_price",
        "sell_avg_price",
        "spread",
        "spread_bps",
    ]
    assert parse_sample_line(json.dumps(data).encode()) == (taken, "binance", 35346513512)


def test_tiny_and_huge_decimals_are_written_without_exponents() -> None:
    book = Book([(Decimal("1E-12"), Decimal("1E+15"))], [(Decimal("2E-12"), Decimal("3E+15"))])
    taken = sample("PEPEUSDT", book, Decimal("1E+3"), 0)
    line = sample_line(taken, "binance", 0)
    assert b"E" not in line.replace(b"PEPE", b"").replace(b'"market"', b"")
    assert json.loads(line)["notional"] == "1000"
    assert parse_sample_line(line)[0] == taken


# --- round trip ----------------------------------------------------------------------------------


@st.composite
def books(draw: st.DrawFn) -> Book:
    """An uncrossed book of 0..6 levels a side; prices and sizes on varied decimal scales."""
    price_scale, qty_scale = draw(st.integers(-2, 12)), draw(st.integers(-3, 10))
    split = draw(st.integers(2, 10**6))
    bids = draw(st.lists(st.integers(1, split - 1), max_size=6, unique=True))
    asks = draw(st.lists(st.integers(split, 2 * 10**6), max_size=6, unique=True))
    quantity = st.integers(1, 10**8).map(lambda n: Decimal(n).scaleb(-qty_scale))
    return Book(
        [(Decimal(c).scaleb(-price_scale), draw(quantity)) for c in bids],
        [(Decimal(c).scaleb(-price_scale), draw(quantity)) for c in asks],
    )


@st.composite
def samples(draw: st.DrawFn) -> tuple[SpreadSample, str, int]:
    venue = draw(st.sampled_from(["binance", "btcmarkets"]))
    pattern = r"[A-Z0-9]{2,20}" if venue == "binance" else r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}"
    market = draw(st.from_regex(pattern, fullmatch=True))
    notional = Decimal(draw(st.integers(1, 10**12))).scaleb(-draw(st.integers(-3, 8)))
    taken = sample(market, draw(books()), notional, draw(st.integers(0, 2**53)))
    return taken, venue, draw(st.integers(0, 2**63 - 1))


@given(samples())
def test_every_sample_survives_the_round_trip_through_a_line(
    case: tuple[SpreadSample, str, int],
) -> None:
    taken, venue, source_id = case
    line = sample_line(taken, venue, source_id)
    assert b"\n" not in line
    assert list(json.loads(line)) == list(FIELDS)
    assert parse_sample_line(line) == case


# --- strict parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "one JSON object"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"market":"BTC-AUD"}\n{"market":"ETH-AUD"}', "one JSON object"),
        (b"\xff", "one JSON object"),
        (without("ts_ms"), "lacks field\\(s\\) 'ts_ms'"),
        (line_with(extra=1), "unknown field\\(s\\) 'extra'"),
        (line_with(venue="kraken"), "'venue' must be one of"),
        (line_with(market="BTCAUD"), "'market' must be a btcmarkets market like BTC-AUD"),
        (line_with(venue="binance"), "'market' must be a binance market like BTCUSDT"),
        (line_with(ts_ms=-1), "'ts_ms' must be an integer >= 0"),
        (line_with(ts_ms="1723161255408"), "'ts_ms' must be an integer"),
        (line_with(source_id=True), "'source_id' must be an integer"),
        (line_with(source_id=1.5), "'source_id' must be an integer"),
        (line_with(notional=150), "'notional' must be a decimal string"),
        (line_with(notional=None), "'notional' must not be null"),
        (line_with(notional="0"), "'notional' must be > 0"),
        (line_with(mid="1.5E+2"), "'mid' must be a decimal string"),
        (line_with(best_bid="NaN"), "'best_bid' must be a decimal string"),
        (line_with(best_ask=" 100"), "'best_ask' must be a decimal string"),
        (line_with(spread=1.67), "'spread' must be a decimal string"),
        (line_with(thin="false"), "'thin' must be true or false"),
        (line_with(filled_fraction="1.5"), "'filled_fraction' must be in \\[0, 1\\]"),
        (line_with(filled_fraction="0.5"), "'filled_fraction' must be 1 when 'thin' is false"),
        (line_with(mid=None), "'mid' must be null exactly when"),
        (line_with(best_bid="100.0"), "'best_bid' \\(100.0\\) must be below 'best_ask'"),
        (line_with(thin=True), "'buy_avg_price' must be null when 'thin' is true"),
        (line_with(spread_bps=None), "'spread_bps' must not be null when 'thin' is false"),
    ],
)
def test_a_bad_line_is_refused_naming_the_field(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sample_line(line)


def test_writing_refuses_an_unknown_venue_or_a_negative_source_id() -> None:
    taken = sample("BTC-AUD", LADDER, Decimal(150), TS_MS)
    with pytest.raises(ValueError, match="venue"):
        sample_line(taken, "kraken", 1)
    with pytest.raises(ValueError, match="source_id"):
        sample_line(taken, "btcmarkets", -1)
