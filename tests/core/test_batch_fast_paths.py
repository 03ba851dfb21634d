"""The ingest's fast paths give exactly what the straightforward versions gave.

Each test holds a fast path (line splitting, regex and sliced JSON decoding, streamed gzip, row-order
preserving dedupe and lookups) against a plain-Python reference of the behaviour it replaced.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.core import lake, trades
from tasks.core.candles import aggregate, exclude_known
from tasks.core.trades import LINES_SCHEMA, decode_lines, distinct_trades, lines_frame
from tests.builders import BASE_TIME, Trade, trades_frame

# Characters Python's str.strip() and Rust's whitespace disagree about (\x1c-\x1f), others both
# strip, and some neither does.
TRICKY = list(
    "ab{} \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f\u3000"
    "\u180e\u200b\ufeff"
)
BODIES = st.one_of(
    st.text(st.sampled_from(TRICKY), max_size=30).map(str.encode), st.binary(max_size=20)
)


def reference_lines(messages: list[tuple[str, int, bytes]]) -> pl.DataFrame:
    rows = [
        (message_id, sent_ms, line)
        for message_id, sent_ms, body in messages
        for line in body.decode("utf-8", errors="replace").split("\n")
        if line.strip()
    ]
    return pl.DataFrame(rows, schema=LINES_SCHEMA, orient="row")


@settings(max_examples=300)
@given(st.lists(st.tuples(st.text(max_size=3), st.integers(0, 10**12), BODIES), max_size=4))
def test_lines_split_like_str_split_and_drop_what_str_strip_empties(
    messages: list[tuple[str, int, bytes]],
) -> None:
    assert lines_frame(messages).equals(reference_lines(messages))


def test_decoding_in_slices_equals_decoding_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [Trade(trade_id=i, price=f"{i}.5").line() for i in range(1, 40)]
    lines[17] = "not json"
    frame = lines_frame([("m", 1, "\n".join(lines).encode())])
    whole, whole_rejects = decode_lines(frame)
    monkeypatch.setattr(trades, "_DECODE_ROWS", 7)
    sliced, sliced_rejects = decode_lines(frame)
    assert sliced.equals(whole) and sliced_rejects == whole_rejects
    assert sliced.height == 38


@st.composite
def trade_lines(draw: st.DrawFn) -> str:
    """Trade events as JSON: mostly Binance's own compact form, often bent in the ways a JSON writer
    may (key order, spaces, escapes, leading keys missing or extra, numbers as strings, huge ids)."""
    ints = st.one_of(st.integers(0, 10**13), st.integers(10**17, 10**20), st.just(0))
    number = st.one_of(ints, ints.map(str), st.integers(-5, -1))
    decimal = st.one_of(
        st.sampled_from(["61837.62000000", "0.00588000", "1..2", "", "1e5"]),
        st.text(st.sampled_from('0123456789.-é\\"'), max_size=6),
    )
    event = {
        "e": draw(st.sampled_from(["trade", "aggTrade", "Trade", ""])),
        "E": draw(number),
        "s": draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "btcusdt", "BTC USDT"])),
        "t": draw(number),
        "p": draw(decimal),
        "q": draw(decimal),
        "T": draw(number),
        "m": draw(st.sampled_from([True, False, None, "true"])),
        "M": draw(st.sampled_from([True, False])),
    }
    if draw(st.booleans()):
        del event[draw(st.sampled_from(sorted(event)))]
    if draw(st.booleans()):
        event["x"] = 1
    keys = list(event)
    if draw(st.booleans()):
        random.Random(draw(st.integers())).shuffle(keys)
    separators = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
    ascii_only = draw(st.booleans())
    return json.dumps({k: event[k] for k in keys}, separators=separators, ensure_ascii=ascii_only)


@settings(max_examples=200)
@given(st.lists(st.one_of(trade_lines(), st.just(Trade().line())), min_size=1, max_size=12))
def test_decoding_binance_lines_without_a_json_parser_gives_what_the_parser_gives(
    lines: list[str],
) -> None:
    frame = lines_frame([("m", 1, "\n".join(lines).encode())])
    rows, rejects = decode_lines(frame)
    parsed = trades._json_decode(frame.get_column("raw"))
    assert not rejects
    assert rows.equals(pl.concat([frame, parsed], how="horizontal"))


def test_lake_objects_are_one_shot_gzip_of_the_lines_and_their_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lake, "_SLICE_LINES", 4)  # many slices, and a short last one
    trades_ = [Trade(trade_id=i, trade_time=BASE_TIME + i, price=f"{i}.25") for i in range(1, 23)]
    raw = [t.line() for t in trades_]
    frame = trades_frame(trades_).with_columns(
        pl.Series("raw", raw),
        pl.col("trade_time").alias("event_time"),
        (pl.col("trade_time") * 1_000_000).alias("ts_event"),
        (pl.col("trade_time") * 1_000_000).alias("ts_init"),
    )
    [ndjson, parquet] = lake.trade_objects(frame, "raw", "trades")
    text = ("\n".join(raw) + "\n").encode()
    assert ndjson.body == gzip.compress(text, compresslevel=5, mtime=0)
    digest = hashlib.sha256(text).hexdigest()[:16]
    name = f"{22:020d}-{1:020d}-{digest}"
    assert ndjson.key.endswith(f"/{name}.ndjson.gz") and parquet.key.endswith(f"/{name}.parquet")


@st.composite
def trade_rows(draw: st.DrawFn) -> list[Trade]:
    return [
        Trade(
            symbol=draw(st.sampled_from(["BTCUSDT", "ETHUSDT"])),
            trade_id=draw(st.integers(1, 30)),
            price=draw(st.sampled_from(["1.5", "2.25", "3"])),
            trade_time=BASE_TIME + draw(st.integers(0, 150_000)),
        )
        for _ in range(draw(st.integers(0, 40)))
    ]


@given(trade_rows())
def test_distinct_trades_keeps_the_first_row_of_each_id_in_order(rows: list[Trade]) -> None:
    seen: set[tuple[str, int]] = set()
    expected = []
    for t in rows:
        if (t.symbol, t.trade_id) not in seen:
            seen.add((t.symbol, t.trade_id))
            expected.append(t)
    assert distinct_trades(trades_frame(rows)).equals(trades_frame(expected))


@given(trade_rows(), trade_rows())
def test_exclude_known_drops_exactly_the_held_ids_and_keeps_the_order(
    rows: list[Trade], known_rows: list[Trade]
) -> None:
    known = aggregate(trades_frame(known_rows)) if known_rows else []
    held = {(c.symbol, i) for c in known for lo, hi in c.trade_ids for i in range(lo, hi + 1)}
    expected = [t for t in rows if (t.symbol, t.trade_id) not in held]
    assert exclude_known(trades_frame(rows), known).equals(trades_frame(expected))
