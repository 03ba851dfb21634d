from __future__ import annotations

import json
import re
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.binance_rest import (
    TRADES_MAX_LIMIT,
    PageRequest,
    TradePager,
    historical_trades_params,
    rest_trades_frame,
)
from tasks.core.lake import parquet_frame
from tasks.core.trades import TRADES_SCHEMA
from tasks.errors import DecodeError

# The first two BTCUSDT trades of the 2024-08-08 capture as historicalTrades returns them.
FIRST = (
    '{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.7526",'
    '"time":1723161255342,"isBuyerMaker":true,"isBestMatch":true}'
)
SECOND = (
    '{"id":3735683260,"price":"61837.63000000","qty":"0.04800000","quoteQty":"2968.20624",'
    '"time":1723161255617,"isBuyerMaker":true,"isBestMatch":true}'
)
DOCS_EXAMPLE = (
    '{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",'
    '"time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}'
)
FETCHED_NS = 1_723_200_000_123_456_789


def page(*objects: str) -> bytes:
    return ("[" + ",".join(objects) + "]").encode()


def test_a_page_becomes_lake_rows_with_exact_decimals_and_binances_own_bytes() -> None:
    frame = rest_trades_frame("BTCUSDT", page(FIRST, SECOND), FETCHED_NS)

    assert frame.schema == pl.Schema(TRADES_SCHEMA)
    assert frame.rows(named=True)[0] == {
        "symbol": "BTCUSDT",
        "trade_id": 3735683259,
        "price": Decimal("61837.63000000"),
        "quantity": Decimal("0.02000000"),
        "is_buyer_maker": True,
        "trade_time": 1723161255342,
        "ts_event": 1723161255342 * 1_000_000,
        "ts_init": FETCHED_NS,
        "event_time": 1723161255342,
        "raw": FIRST,
        "message_id": "rest:historicalTrades:3735683259",
    }
    assert frame["raw"].to_list() == [FIRST, SECOND]
    assert frame["trade_time"].to_list() == [1723161255342, 1723161255617]
    assert frame["message_id"].unique().to_list() == ["rest:historicalTrades:3735683259"]


def test_the_lakes_quote_quantity_equals_binances_quote_qty() -> None:
    body = page(FIRST, SECOND, DOCS_EXAMPLE)
    lake = parquet_frame(rest_trades_frame("BTCUSDT", body, FETCHED_NS))
    binance = {t["id"]: Decimal(t["quoteQty"]) for t in json.loads(body)}
    assert dict(zip(lake["trade_id"], lake["quote_quantity"], strict=True)) == binance
    assert binance[28457] == Decimal("48.000012")


def test_microsecond_times_give_ms_buckets_and_full_precision_ts_event() -> None:
    micros = FIRST.replace('"time":1723161255342', '"time":1723161255342123')
    row = rest_trades_frame("BTCUSDT", page(micros), FETCHED_NS).row(0, named=True)
    assert (row["trade_time"], row["event_time"]) == (1723161255342, 1723161255342)
    assert row["ts_event"] == 1723161255342123000
    assert row["raw"] == micros


def test_an_empty_page_is_an_empty_frame_of_the_schema() -> None:
    frame = rest_trades_frame("BTCUSDT", b"[]", FETCHED_NS)
    assert frame.height == 0
    assert frame.schema == pl.Schema(TRADES_SCHEMA)


def test_decimals_are_never_rounded_through_floats() -> None:
    tiny = FIRST.replace('"61837.63000000"', '"99999999999.99999999"').replace(
        '"0.02000000"', '"0.00000001"'
    )
    row = rest_trades_frame("BTCUSDT", page(tiny), FETCHED_NS).row(0, named=True)
    assert row["price"] == Decimal("99999999999.99999999")
    assert row["quantity"] == Decimal("0.00000001")


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ('"price":"61837.63000000",', "", "trade id=3735683259 lacks field 'price'"),
        ('"61837.63000000"', "61837.63", "'price' must be a string, got 61837.63"),
        ('"61837.63000000"', '"0.00000000"', "'price' must be a decimal string > 0"),
        ('"61837.63000000"', '"-1.00000000"', "'price' must be a decimal string > 0"),
        ('"61837.63000000"', '"1e5"', "'price' must be a decimal string > 0"),
        ('"61837.63000000"', '"NaN"', "'price' must be a decimal string > 0"),
        (
            '"61837.63000000"',
            '"1.123456789"',
            "'price' must be a decimal string > 0, below 10^11, with at most 8",
        ),
        ('"0.02000000"', '"0"', "trade id=3735683259 field 'qty' must be a decimal string > 0"),
        ('"id":3735683259', '"id":"3735683259"', "field 'id' must be an integer"),
        ('"id":3735683259', '"id":true', "field 'id' must be an integer, got true"),
        ('"id":3735683259', '"id":-5', "field 'id' must be a trade id"),
        ('"time":1723161255342', '"time":"1723161255342"', "field 'time' must be an integer"),
        ('"time":1723161255342', '"time":0', "field 'time' must be a ms or µs epoch time"),
        ('"time":1723161255342', '"time":99999999999999', "field 'time' must be a ms or µs"),
        ('"isBuyerMaker":true', '"isBuyerMaker":"true"', "'isBuyerMaker' must be true or false"),
        ('"quoteQty":"1236.7526",', "", "lacks field 'quoteQty'"),
    ],
)
def test_a_malformed_trade_raises_naming_the_field_and_the_trade_id(
    replace: str, by: str, message: str
) -> None:
    assert replace in FIRST
    with pytest.raises(DecodeError, match=re.escape(message)) as raised:
        rest_trades_frame("BTCUSDT", page(SECOND, FIRST.replace(replace, by)), FETCHED_NS)
    assert "historicalTrades BTCUSDT" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"code":-1121,"msg":"Invalid symbol."}', "must be a JSON array of trades, got"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[1,2]", "every element must be a trade object, got 1"),
        (page(FIRST)[:-5], "not JSON"),
    ],
)
def test_an_answer_that_is_no_trade_array_raises(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(message)):
        rest_trades_frame("BTCUSDT", body, FETCHED_NS)


def test_historical_trades_params_are_binances_query_and_refuse_what_binance_refuses() -> None:
    assert historical_trades_params("BTCUSDT", 3735683259, 1000) == {
        "symbol": "BTCUSDT",
        "fromId": "3735683259",
        "limit": "1000",
    }
    for bad in [("BTCUSDT", 1, 0), ("BTCUSDT", 1, 1001), ("BTCUSDT", -1, 5), ("BTC/USDT", 1, 5)]:
        with pytest.raises(ValueError, match="must"):
            historical_trades_params(*bad)


def test_the_pager_asks_full_pages_then_only_what_is_left() -> None:
    pager = TradePager(100, 2599)
    first = pager.first()
    assert first == PageRequest(100, 1000)
    second = pager.after(first, list(range(100, 1100)))
    assert second == PageRequest(1100, 1000)
    assert second is not None
    third = pager.after(second, list(range(1100, 2100)))
    assert third == PageRequest(2100, 500)
    assert third is not None
    assert pager.after(third, list(range(2100, 2600))) is None
    assert TradePager(7, 7).first() == PageRequest(7, 1)


def test_a_short_page_is_followed_from_its_highest_id() -> None:
    pager = TradePager(100, 2599)
    assert pager.after(pager.first(), list(range(100, 400))) == PageRequest(400, 1000)


def test_an_empty_page_while_ids_are_wanted_is_reported_as_missing_trades() -> None:
    pager = TradePager(100, 2599)
    request = PageRequest(2100, 500)
    assert pager.missing(request, []) == (2100, 2599)
    assert pager.missing(request, [2050, 2099]) == (2100, 2599)  # nothing new either
    assert pager.missing(request, [2100]) is None
    with pytest.raises(ValueError, match=r"check TradePager\.missing first"):
        pager.after(request, [])


def test_a_pager_refuses_an_empty_range_or_a_bad_page_size() -> None:
    for args in [(5, 4, 10), (-1, 4, 10), (1, 4, 0), (1, 4, TRADES_MAX_LIMIT + 1)]:
        with pytest.raises(ValueError, match="must"):
            TradePager(*args)


@given(
    first_id=st.integers(0, 10**12),
    span=st.integers(0, 5_000),
    page_size=st.integers(1, TRADES_MAX_LIMIT),
    served=st.integers(1, TRADES_MAX_LIMIT),
)
def test_pages_cover_any_id_range_exactly_once(
    first_id: int, span: int, page_size: int, served: int
) -> None:
    """Even when Binance answers fewer trades than asked (``served`` at most), the answers to the
    pages hold every wanted id exactly once, and no page asks beyond ``last_id``."""
    last_id = first_id + span
    pager = TradePager(first_id, last_id, page_size)
    request: PageRequest | None = pager.first()
    received: list[int] = []
    while request is not None:
        assert 1 <= request.limit <= page_size
        assert request.from_id + request.limit - 1 <= last_id
        answer = list(range(request.from_id, request.from_id + min(request.limit, served)))
        assert pager.missing(request, answer) is None
        received += answer
        request = pager.after(request, answer)
    assert received == list(range(first_id, last_id + 1))


@given(first_id=st.integers(0, 10**6), span=st.integers(0, 3_000), end=st.integers(0, 3_000))
def test_a_market_ending_inside_the_range_is_reported_at_its_first_missing_id(
    first_id: int, span: int, end: int
) -> None:
    last_id = first_id + span
    newest = first_id + end - 1  # the latest trade; may be before first_id
    pager = TradePager(first_id, last_id)
    request: PageRequest | None = pager.first()
    while request is not None:
        answer = list(range(request.from_id, min(newest, request.from_id + request.limit - 1) + 1))
        missing = pager.missing(request, answer)
        if missing is not None:
            assert missing == (newest + 1, last_id)
            return
        request = pager.after(request, answer)
    assert newest >= last_id
