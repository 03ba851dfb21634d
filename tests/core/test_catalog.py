from __future__ import annotations

import io
from decimal import Decimal
from typing import Literal

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.spec import resource_spec
from tasks.core.candle_lake import (
    CandleSpan,
    candle_key,
    candle_object,
    candle_spans,
    spans_between,
)
from tasks.core.catalog import (
    PARQUET_SERDE,
    TRADES_COLUMNS,
    choose_engine,
    glue_type,
    is_aws_endpoint,
    lake_tables,
    partition_input,
    partition_of_key,
    partitions_of_keys,
    polars_type,
    table_input,
    table_matches,
)
from tasks.core.keys import lake_key
from tasks.core.lake import trade_objects
from tasks.core.models import Candle, Interval
from tasks.core.sql import QueryResult, frame_result, plan_scan
from tasks.core.trades import decode_lines, lines_frame, typed_trades
from tasks.settings import Settings
from tests.builders import BASE_TIME, Trade

SPEC = resource_spec(Settings(prefix="cat-test"))
TRADES, CANDLES, SPREADS = lake_tables(SPEC)
BUCKET = SPEC.bucket.name


@pytest.mark.parametrize(
    ("column", "glue"),
    [
        ("trade_id", "bigint"),
        ("price", "decimal(38,8)"),
        ("quantity", "decimal(38,8)"),
        ("quote_quantity", "decimal(38,16)"),
        ("is_buyer_maker", "boolean"),
        ("trade_time", "timestamp"),
        ("event_time", "timestamp"),
        ("ts_event", "bigint"),
        ("ts_init", "bigint"),
    ],
)
def test_trades_table_has_hive_types_of_the_parquet_columns(column: str, glue: str) -> None:
    sd = table_input(TRADES, BUCKET)["StorageDescriptor"]
    assert {c["Name"]: c["Type"] for c in sd["Columns"]}[column] == glue


def test_trades_table_is_external_parquet_partitioned_by_symbol_date_hour() -> None:
    t = table_input(TRADES, BUCKET)
    assert t["Name"] == "trades" and t["TableType"] == "EXTERNAL_TABLE"
    assert [(k["Name"], k["Type"]) for k in t["PartitionKeys"]] == [
        ("symbol", "string"),
        ("date", "string"),
        ("hour", "string"),
    ]
    sd = t["StorageDescriptor"]
    assert sd["Location"] == f"s3://{BUCKET}/trades/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert t["Parameters"]["classification"] == "parquet"


def test_candles_table_is_partitioned_by_interval_symbol_date() -> None:
    t = table_input(CANDLES, BUCKET)
    assert [k["Name"] for k in t["PartitionKeys"]] == ["interval", "symbol", "date"]
    types = {c["Name"]: c["Type"] for c in t["StorageDescriptor"]["Columns"]}
    assert types["open_time"] == "timestamp" and types["close"] == "decimal(38,8)"
    assert types["quote_volume"] == "decimal(38,16)" and types["trade_count"] == "bigint"
    assert t["StorageDescriptor"]["Location"] == f"s3://{BUCKET}/candles/"


def test_the_catalog_matches_the_parquet_the_ingest_writes() -> None:
    lines = [Trade(trade_id=i, price="61837.63", trade_time=BASE_TIME + i).line() for i in (1, 2)]
    rows, rejects = decode_lines(lines_frame([("m1", BASE_TIME, "\n".join(lines).encode())]))
    assert not rejects
    objects = trade_objects(typed_trades(rows), SPEC.bucket.raw_prefix, SPEC.bucket.trades_prefix)
    (parquet,) = [o for o in objects if o.key.endswith(".parquet")]
    assert pl.read_parquet(io.BytesIO(parquet.body)).schema == pl.Schema(TRADES_COLUMNS)
    assert partition_of_key(TRADES, parquet.key) == ("BTCUSDT", "2024-08-08", "23")


def test_partition_input_is_located_at_its_hive_path_under_the_table() -> None:
    p = partition_input(TRADES, BUCKET, ("BTCUSDT", "2024-08-08", "23"))
    assert p["Values"] == ["BTCUSDT", "2024-08-08", "23"]
    location = p["StorageDescriptor"]["Location"]
    assert location == f"s3://{BUCKET}/trades/symbol=BTCUSDT/date=2024-08-08/hour=23/"
    with pytest.raises(ValueError, match="free of"):
        partition_input(TRADES, BUCKET, ("BTC/USDT", "2024-08-08", "23"))


def test_an_unchanged_table_needs_no_update_and_a_changed_one_does() -> None:
    desired = table_input(TRADES, BUCKET)
    assert table_matches(dict(desired), desired)
    other = table_input(TRADES, "another-bucket")
    assert not table_matches(dict(other), desired)
    fewer = dict(desired)
    fewer["StorageDescriptor"] = {**desired["StorageDescriptor"], "Columns": []}
    assert not table_matches(fewer, desired)


@pytest.mark.parametrize(
    ("key", "values"),
    [
        (
            "trades/symbol=BTCUSDT/date=2024-08-08/hour=23/1-9-ab.parquet",
            ("BTCUSDT", "2024-08-08", "23"),
        ),
        ("raw/trades/symbol=BTCUSDT/date=2024-08-08/hour=23/1-9-ab.ndjson.gz", None),
        ("quarantine/trades/date=2024-08-08/hour=23/ab.ndjson", None),
        ("trades/date=2024-08-08/symbol=BTCUSDT/hour=23/x.parquet", None),  # keys out of order
        ("trades/symbol=BTCUSDT/date=2024-08-08/hour=23/", None),  # a folder marker
        ("trades/symbol=BTCUSDT/date=2024-08-08/hour=23/_SUCCESS", None),  # hidden, as for Hive
        ("trades/symbol=BTCUSDT/date=2024-08-08/hour=23/extra/x.parquet", None),
        ("trades/symbol=/date=2024-08-08/hour=23/x.parquet", None),
        ("tradesx/symbol=BTCUSDT/date=2024-08-08/hour=23/x.parquet", None),
    ],
)
def test_partition_values_are_read_from_trade_object_keys(
    key: str, values: tuple[str, ...] | None
) -> None:
    assert partition_of_key(TRADES, key) == values


@given(
    symbol=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12),
    time_ms=st.integers(0, 4_102_444_800_000),
)
def test_every_lake_key_parses_back_to_its_partition(symbol: str, time_ms: int) -> None:
    key = lake_key(SPEC.bucket.trades_prefix, symbol, time_ms, 1, 2, "abc", "parquet")
    values = partition_of_key(TRADES, key)
    assert values is not None and values[0] == symbol
    location = TRADES.partition_location(BUCKET, values)
    assert f"s3://{BUCKET}/{key}".startswith(location)


def test_keys_are_grouped_by_table_and_other_keys_ignored() -> None:
    span = CandleSpan("ETHUSDT", Interval.M1, BASE_TIME - BASE_TIME % 3_600_000)
    keys = [
        "trades/symbol=BTCUSDT/date=2024-08-08/hour=23/1-2-a.parquet",
        "trades/symbol=BTCUSDT/date=2024-08-08/hour=23/3-4-b.parquet",
        "trades/symbol=BTCUSDT/date=2024-08-09/hour=00/5-6-c.parquet",
        "raw/trades/symbol=BTCUSDT/date=2024-08-08/hour=23/1-2-a.ndjson.gz",
        candle_key(SPEC.bucket.candles_prefix, span),
    ]
    assert partitions_of_keys(lake_tables(SPEC), keys) == {
        "trades": {("BTCUSDT", "2024-08-08", "23"), ("BTCUSDT", "2024-08-09", "00")},
        "candles": {("1m", "ETHUSDT", "2024-08-08")},
    }


@pytest.mark.parametrize(
    ("dtype", "glue"),
    [
        (pl.Decimal(38, 8), "decimal(38,8)"),
        (pl.Decimal(38, 16), "decimal(38,16)"),
        (pl.Datetime("ms", "UTC"), "timestamp"),
        (pl.Int64(), "bigint"),
        (pl.Boolean(), "boolean"),
        (pl.String(), "string"),
        (pl.Float64(), "double"),
        (pl.Date(), "date"),
    ],
)
def test_glue_and_polars_types_map_both_ways(dtype: pl.DataType, glue: str) -> None:
    assert glue_type(dtype) == glue
    assert polars_type(glue) == dtype


def test_unknown_types_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="array<string>"):
        polars_type("array<string>")
    with pytest.raises(ValueError, match="no Glue type"):
        glue_type(pl.List(pl.String))


@pytest.mark.parametrize(
    ("setting", "endpoint", "on_aws", "engine"),
    [
        ("auto", "https://glue.us-east-1.amazonaws.com", True, "athena"),
        ("auto", "https://glue.cn-north-1.amazonaws.com.cn", True, "athena"),
        ("auto", "http://127.0.0.1:5055", False, "local"),
        ("auto", "http://localhost:4566", False, "local"),
        ("auto", "http://amazonaws.com.evil.example", False, "local"),
        ("local", "https://glue.us-east-1.amazonaws.com", True, "local"),
        ("athena", "http://127.0.0.1:5055", False, "athena"),
    ],
)
def test_the_query_engine_is_athena_on_aws_and_local_elsewhere(
    setting: Literal["auto", "athena", "local"], endpoint: str, on_aws: bool, engine: str
) -> None:
    assert is_aws_endpoint(endpoint) is on_aws
    assert choose_engine(setting, endpoint) == engine


def _candle(open_time: int, close: str = "10", interval: Interval = Interval.M1) -> Candle:
    p = Decimal(close)
    return Candle(
        "BTCUSDT", interval, open_time, p, p, p, p, Decimal(1), p, 1, Decimal(0), Decimal(0), 7, 7
    )


HOUR = BASE_TIME - BASE_TIME % 3_600_000  # 2024-08-08T23:00Z


@pytest.mark.parametrize(
    ("interval", "open_time", "key"),
    [
        (
            Interval.M1,
            BASE_TIME,
            "candles/interval=1m/symbol=BTCUSDT/date=2024-08-08/BTCUSDT-1m-20240808T23.parquet",
        ),
        (
            Interval.H1,
            HOUR,
            "candles/interval=1h/symbol=BTCUSDT/date=2024-08-08/BTCUSDT-1h-20240808.parquet",
        ),
        (
            Interval.D1,
            HOUR - 23 * 3_600_000,
            "candles/interval=1d/symbol=BTCUSDT/date=2024-08-08/BTCUSDT-1d-20240808.parquet",
        ),
    ],
)
def test_a_candle_object_key_names_its_span_only(
    interval: Interval, open_time: int, key: str
) -> None:
    (span,) = candle_spans([_candle(open_time, interval=interval)])
    assert candle_key("candles", span) == key
    assert partition_of_key(CANDLES, key) == (interval.value, "BTCUSDT", "2024-08-08")


def test_rebuilding_a_span_rewrites_the_same_key_with_the_new_content() -> None:
    minutes = [_candle(HOUR + i * 60_000, str(10 + i)) for i in range(60)]
    (span,) = candle_spans(minutes)
    first = candle_object("candles", span, minutes)
    assert candle_object("candles", span, list(reversed(minutes))) == first  # deterministic
    later = [*minutes[:-1], _candle(HOUR + 59 * 60_000, "99")]
    rebuilt = candle_object("candles", span, later)
    assert rebuilt.key == first.key and rebuilt.body != first.body
    frame = pl.read_parquet(io.BytesIO(rebuilt.body))
    assert frame.height == 60 and frame["close"][-1] == Decimal("99")
    assert frame["open_time"][0].isoformat() == "2024-08-08T23:00:00+00:00"
    assert frame["close_time"][0].isoformat() == "2024-08-08T23:00:59.999000+00:00"


def test_a_candle_outside_the_span_is_refused() -> None:
    span = CandleSpan("BTCUSDT", Interval.M1, HOUR)
    with pytest.raises(ValueError, match="outside"):
        candle_object("candles", span, [_candle(HOUR + 3_600_000)])


def test_spans_between_cover_every_touched_hour() -> None:
    spans = spans_between("BTCUSDT", Interval.M1, HOUR + 59 * 60_000, HOUR + 61 * 60_000)
    assert [s.start_ms for s in spans] == [HOUR, HOUR + 3_600_000]
    assert spans[0].last_open_time == HOUR + 59 * 60_000


def test_only_files_of_registered_partitions_are_scanned() -> None:
    root = f"s3://{BUCKET}/trades/"
    a = f"{root}symbol=BTCUSDT/date=2024-08-08/hour=23/"
    b = f"{root}symbol=ETHUSDT/date=2024-08-08/hour=23/"
    elsewhere = f"s3://{BUCKET}/moved/eth23/"
    urls = [
        a + "1.parquet",
        a + "_tmp/2.parquet",  # hidden directory
        a + ".3.parquet",  # hidden file
        f"{root}symbol=BTCUSDT/date=2024-08-09/hour=00/4.parquet",  # not registered
        b + "5.parquet",  # registered elsewhere: its old location is not read
        elsewhere + "6.parquet",
    ]
    partitions = [
        (("BTCUSDT", "2024-08-08", "23"), a),
        (("ETHUSDT", "2024-08-08", "23"), elsewhere),
    ]
    plan = plan_scan(root, ("symbol", "date", "hour"), partitions, urls)
    assert plan.hive_files == (a + "1.parquet",)
    assert plan.located == ((("ETHUSDT", "2024-08-08", "23"), (elsewhere + "6.parquet",)),)


def test_answers_are_text_formatted_as_athena_prints_them() -> None:
    frame = pl.DataFrame(
        {
            "n": [3, None],
            "low": pl.Series(["1.5", "2"]).cast(pl.Decimal(38, 8)),
            "at": pl.Series([BASE_TIME + 7, BASE_TIME]).cast(pl.Datetime("ms", "UTC")),
            "maker": [True, False],
            "symbol": ["BTCUSDT", None],
        }
    )
    assert frame_result(frame, "local") == QueryResult(
        ("n", "low", "at", "maker", "symbol"),
        (
            ("3", "1.50000000", "2024-08-08 23:55:00.007", "true", "BTCUSDT"),
            (None, "2.00000000", "2024-08-08 23:55:00.000", "false", None),
        ),
        "local",
    )
