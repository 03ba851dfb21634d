from __future__ import annotations

import base64
import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.contract import decode_body, encode_body
from tasks.core.keys import iso_millis, iso_time, market_id, parse_iso, partition_path
from tasks.core.models import Interval
from tasks.core.trades import decode_lines, distinct_trades, lines_frame, typed_trades
from tasks.errors import DecodeError
from tests.builders import BASE_TIME, Trade

LINE = st.text(st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), min_size=1)


@given(st.lists(LINE, min_size=1, max_size=50), st.sampled_from([0, 64, 10**9]))
def test_encoded_bodies_decode_to_the_same_lines(lines: list[str], gzip_min: int) -> None:
    encoded = encode_body([line.encode() for line in lines], gzip_min)
    attr = encoded.attributes.get("content-encoding")
    assert decode_body(encoded.body, attr, 10**9).decode().split("\n") == lines


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        ("@@@", "gzip", "not base64"),
        (base64.b64encode(b"plain").decode(), "gzip", "not gzip"),
        (base64.b64encode(gzip.compress(b"x" * 1000, mtime=0)[:-12]).decode(), "gzip", "truncated"),
        (
            base64.b64encode(gzip.compress(b"x" * 10_000, mtime=0)).decode(),
            "gzip",
            "CANDLEFLOW_MAX_BODY_BYTES",
        ),
        ("x" * 10_000, None, "CANDLEFLOW_MAX_BODY_BYTES"),
        ("{}", "br", "unknown content-encoding"),
    ],
)
def test_bodies_breaking_the_contract_say_why(
    body: str, encoding: str | None, message: str
) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_body(body, encoding, max_bytes=5000)


def test_keys_are_pure_functions_of_the_data() -> None:
    assert market_id("BTCUSDT", Interval.M1) == "BTCUSDT_1m"
    assert iso_time(BASE_TIME) == "2024-08-08T23:55:00Z"
    assert iso_millis(BASE_TIME + 59_999) == "2024-08-08T23:55:59.999Z"
    assert parse_iso("2024-08-08T23:55:00Z") == parse_iso("2024-08-08T23:55:00") == BASE_TIME
    assert (
        partition_path("ETHUSDT", BASE_TIME + 300_000) == "symbol=ETHUSDT/date=2024-08-09/hour=00"
    )
    assert Interval.H1.floor(BASE_TIME) == BASE_TIME - 55 * 60_000


def test_lines_that_are_not_json_objects_are_rejected_and_the_rest_decoded() -> None:
    good = Trade(trade_id=7).line()
    body = "\n".join([good, "nope", "[1,2]", '{"t": [1]}', "", good]).encode()
    rows, rejects = decode_lines(lines_frame([("m1", 5, body)]))
    assert rows["raw"].to_list() == [good, good]
    assert [r.reason.split(":")[0] for r in rejects] == [
        "not JSON",
        "not a JSON object but list",
        "field(s) t hold a JSON object or array, not a value",
    ]


def test_microsecond_trade_times_bucket_like_milliseconds_and_keep_full_precision() -> None:
    ms = Trade(trade_id=1, trade_time=BASE_TIME + 1234).line()
    us = Trade(trade_id=2, trade_time=(BASE_TIME + 1234) * 1000 + 567).line()
    rows, _ = decode_lines(lines_frame([("m", 9, f"{ms}\n{us}".encode())]))
    typed = typed_trades(rows)
    assert typed["trade_time"].to_list() == [BASE_TIME + 1234] * 2
    assert typed["ts_event"].to_list() == [
        (BASE_TIME + 1234) * 10**6,
        (BASE_TIME + 1234) * 10**6 + 567_000,
    ]
    assert typed["ts_init"].to_list() == [9_000_000] * 2


def test_the_first_copy_of_a_duplicated_trade_wins() -> None:
    lines = [
        Trade(trade_id=1).line(),
        Trade(trade_id=1).line(),
        Trade(trade_id=1, symbol="ETHUSDT").line(),
    ]
    rows, _ = decode_lines(lines_frame([("a", 1, "\n".join(lines).encode())]))
    assert distinct_trades(typed_trades(rows)).select("symbol", "trade_id").rows() == [
        ("BTCUSDT", 1),
        ("ETHUSDT", 1),
    ]
