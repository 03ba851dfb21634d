"""Lake object names and contents: the spans in the names, the listing that finds overlaps, ids."""

from __future__ import annotations

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.keys import ID_WIDTH, lake_key, lake_scan, lake_span
from tasks.core.lake import object_trade_ids, overlapping, partition_objects, partitions
from tasks.core.trades import decode_lines, lines_frame, typed_trades
from tests.builders import BASE_TIME, Trade

IDS = st.integers(0, 2**63 - 1)


def lake_frame(ids: list[int]) -> pl.DataFrame:
    """Accepted trades as the ingest holds them (raw line included), one per id."""
    lines = [Trade(trade_id=i, trade_time=BASE_TIME + 1).line() for i in ids]
    rows, rejects = decode_lines(lines_frame([("m1", BASE_TIME, "\n".join(lines).encode())]))
    assert not rejects
    return typed_trades(rows)


@given(first=IDS, last=IDS)
def test_a_lake_key_names_its_span_and_nothing_else_parses(first: int, last: int) -> None:
    key = lake_key("raw/trades", "BTCUSDT", BASE_TIME, first, last, "0123abcd", "ndjson.gz")
    assert lake_span(key) == (first, last)
    assert key.startswith("raw/trades/symbol=BTCUSDT/date=2024-08-08/hour=23/")
    unpadded = key.replace(f"/{last:0{ID_WIDTH}d}-", f"/{last}-", 1)  # ids have at most 19 digits
    assert lake_span(unpadded) is None


def test_keys_of_another_shape_name_no_span() -> None:
    for name in ("1-9-ab.parquet", "_SUCCESS", "x-y-z.parquet", "", f"{'1' * 20}.parquet"):
        assert lake_span(f"trades/symbol=A/date=2024-08-08/hour=23/{name}") is None


@given(
    spans=st.lists(st.tuples(IDS, IDS).map(sorted), min_size=1, max_size=30),
    first=IDS,
)
def test_the_listing_from_a_first_id_holds_exactly_the_objects_ending_at_or_after_it(
    spans: list[list[int]], first: int
) -> None:
    """What S3 returns for (Prefix, StartAfter): the keys under Prefix sorting after StartAfter."""
    keys = [lake_key("trades", "ETHUSDT", BASE_TIME, lo, hi, "d", "parquet") for lo, hi in spans]
    folder, start_after = lake_scan("trades", "ETHUSDT", BASE_TIME, first)
    listed = sorted(k for k in keys if k.startswith(folder) and k > start_after)
    assert listed == sorted(k for k, (_, hi) in zip(keys, spans, strict=True) if hi >= first)


@given(spans=st.lists(st.tuples(IDS, IDS).map(sorted), max_size=20), lo=IDS, hi=IDS)
def test_overlapping_keeps_the_keys_whose_span_meets_the_range(
    spans: list[list[int]], lo: int, hi: int
) -> None:
    keys = [lake_key("trades", "BTCUSDT", BASE_TIME, a, b, "d", "parquet") for a, b in spans]
    expected = [k for k, (a, b) in zip(keys, spans, strict=True) if a <= hi and b >= lo]
    assert overlapping([*keys, "trades/symbol=BTCUSDT/x.parquet"], lo, hi) == expected


def test_both_formats_give_back_the_trade_ids_they_hold() -> None:
    (part,) = partitions(lake_frame([7, 3, 5, 2**40]))
    raw, parquet = partition_objects(part, "raw/trades", "trades")
    for obj in (raw, parquet):
        assert object_trade_ids(obj.key, obj.body).to_list() == [3, 5, 7, 2**40]
        assert lake_span(obj.key) == (3, 2**40)
