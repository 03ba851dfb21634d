"""Parsing Binance frames keeps each trade's bytes exactly and rejects what Binance never sends."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.parse import MalformedFrame, parse_capture_line, parse_frame
from tests.fakes.binance_ws import BTC_0808, ETH_0808
from tests.producer.builders import (
    make_book_ticker_frame,
    make_frame,
    make_trade_data,
)

REAL_FRAME = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,'
    '"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
)


def test_a_real_trade_frame_gives_its_data_object_byte_for_byte() -> None:
    trade = parse_frame(REAL_FRAME)
    assert trade is not None
    assert trade.line == REAL_FRAME[len('{"stream":"btcusdt@trade","data":') : -1].encode()
    assert (trade.symbol, trade.trade_id) == ("BTCUSDT", 3_735_683_259)
    assert (trade.trade_time_ms, trade.event_time_ms) == (1_723_161_255_342, 1_723_161_255_343)


def test_spacing_and_key_order_are_kept_exactly_as_sent() -> None:
    data = '{ "e" : "trade", "E":2, "s":"ETHUSDT", "t":7, "p":"1.5", "q":"2", "T":1, "m":false }'
    frame = f' {{ "data" : {data} ,\t"stream" : "ethusdt@trade" }} '
    trade = parse_frame(frame)
    assert trade is not None and trade.line == data.encode()


@pytest.mark.parametrize(
    "frame",
    [
        make_book_ticker_frame(),
        make_frame(
            '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}',
            stream="btcusdt@depth@100ms",
        ),
        make_frame('{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1}', stream="btcusdt@aggTrade"),
    ],
    ids=["bookTicker", "depth", "aggTrade"],
)
def test_other_streams_are_ignored(frame: str) -> None:
    assert parse_frame(frame) is None


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("not json", "not a JSON object"),
        ('["btcusdt@trade"]', "not a JSON object"),
        (REAL_FRAME[:-5], "not valid JSON"),
        (REAL_FRAME + "}", "not one JSON object"),
        ('{"stream":1,"data":{}}', "stream is not a string"),
        ('{"stream":"btcusdt@trade"}', "no 'data'"),
        (make_frame('{"e":"kline"}'), "not a trade event"),
        (make_frame(make_trade_data().replace('"t":3735683259,', "")), "bad or missing t"),
        (make_frame(make_trade_data(price="1e5")), "bad or missing p"),
        (make_frame(make_trade_data(symbol="ETHUSDT")), "names symbol 'ETHUSDT'"),
        (make_frame('{"e":"trade",\n"E":1}'), "several lines"),
    ],
)
def test_malformed_frames_raise_a_clear_error(frame: str, says: str) -> None:
    with pytest.raises(MalformedFrame, match=says):
        parse_frame(frame)


def test_malformed_frame_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_frame("{")


@given(
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
    trade_id=st.integers(min_value=0, max_value=2**53),
    price=st.decimals(min_value=0, max_value=10**7, places=8).map(lambda d: f"{d:.8f}"),
    quantity=st.decimals(min_value=0, max_value=10**4, places=8).map(lambda d: f"{d:.8f}"),
    trade_time_ms=st.integers(min_value=0, max_value=2**45),
    buyer_maker=st.booleans(),
)
def test_any_trade_round_trips_exactly(
    symbol: str, trade_id: int, price: str, quantity: str, trade_time_ms: int, buyer_maker: bool
) -> None:
    data = make_trade_data(
        symbol=symbol,
        trade_id=trade_id,
        price=price,
        quantity=quantity,
        trade_time_ms=trade_time_ms,
        buyer_maker=buyer_maker,
    )
    trade = parse_frame(make_frame(data, stream=f"{symbol.lower()}@trade"))
    assert trade is not None
    assert trade.line == data.encode()
    assert json.loads(trade.line)["p"] == price
    assert (trade.symbol, trade.trade_id, trade.trade_time_ms) == (symbol, trade_id, trade_time_ms)


def test_capture_lines_give_receive_time_and_stream_and_skip_the_snapshot() -> None:
    frame = parse_capture_line(f"1723161254087896568 {REAL_FRAME}\n")
    assert frame is not None
    assert (frame.recv_ns, frame.stream, frame.text) == (
        1_723_161_254_087_896_568,
        "btcusdt@trade",
        REAL_FRAME,
    )
    assert parse_capture_line('1723161254206652067 {"lastUpdateId":1,"bids":[],"asks":[]}') is None
    assert parse_capture_line("\n") is None
    reordered = parse_capture_line('5 {"data":{},"stream":"btcusdt@bookTicker"}')
    assert reordered is not None and reordered.stream == "btcusdt@bookTicker"


@pytest.mark.parametrize("line", ["{}", "x {}", "12 [1]", "12 {"])
def test_broken_capture_lines_raise(line: str) -> None:
    with pytest.raises(MalformedFrame):
        parse_capture_line(line)


def test_every_trade_of_the_real_captures_parses_with_the_documented_counts() -> None:
    ids: dict[str, list[int]] = {}
    kinds: Counter[str] = Counter()
    for path in (BTC_0808, ETH_0808):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                frame = parse_capture_line(line)
                if frame is None:
                    kinds["snapshot"] += 1
                    continue
                trade = parse_frame(frame.text)
                if trade is not None:
                    ids.setdefault(trade.symbol, []).append(trade.trade_id)
    assert kinds["snapshot"] == 2
    assert {s: len(v) for s, v in ids.items()} == {"BTCUSDT": 9_757, "ETHUSDT": 6_106}
    assert (min(ids["BTCUSDT"]), max(ids["BTCUSDT"])) == (3_735_683_259, 3_735_693_015)
    assert (min(ids["ETHUSDT"]), max(ids["ETHUSDT"])) == (1_520_538_925, 1_520_545_030)
