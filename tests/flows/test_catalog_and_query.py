from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest

from cli import query as query_cli
from flows.ingest_trades import ingest_trades
from flows.update_catalog import update_catalog
from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import dynamodb, glue, s3
from tasks.aws.clients import AwsClients
from tasks.catalog import export_candles, register_partitions
from tasks.core.candle_lake import candle_spans
from tasks.core.models import Interval
from tasks.errors import QueryError
from tasks.ingest import IngestContext
from tasks.query import engine_for, run_sql
from tasks.settings import Settings
from tests.builders import Trade, capture_trades, reference_candles
from tests.conftest import AwsEnv
from tests.flows.test_ingest_trades import send_lines

CAPTURES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
MIDNIGHT = 1_723_161_600_000  # 2024-08-09T00:00Z: BTCUSDT trades on both sides of it
EIGHT = Decimal("0.00000001")


@pytest.fixture(scope="module")
def lake(moto_endpoint: str, prefect_harness: None) -> Iterator[tuple[AwsEnv, list[Trade]]]:
    """The real captures ingested once through the ingest flow into a lake of its own."""
    settings = Settings(prefix=f"catq-{os.getpid()}")
    spec = resource_spec(settings)
    clients = AwsClients()
    env = AwsEnv(moto_endpoint, settings, spec, provision(clients, spec), clients)
    # The last minutes of BTCUSDT before midnight and the first after it, and ETHUSDT's first trades:
    # three partitions of real trades, few enough to keep the test quick.
    trades = [
        t
        for t in capture_trades(*CAPTURES)
        if (t.symbol == "BTCUSDT" and t.trade_time >= MIDNIGHT - 60_000)
        or (t.symbol == "ETHUSDT" and t.trade_time < MIDNIGHT + 60_000)
    ]
    lines = [t.line() for t in trades]
    send_lines(env, [lines[i : i + 500] for i in range(0, len(lines), 500)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CANDLEFLOW_PREFIX", settings.prefix)
        report = ingest_trades(until_empty=True)
    assert report.new_trades == len(trades)
    yield env, trades


@pytest.fixture
def prefixed(lake: tuple[AwsEnv, list[Trade]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", lake[0].settings.prefix)


def query(env: AwsEnv, sql: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """``candleflow query SQL --format json``, parsed."""
    parser = argparse.ArgumentParser()
    query_cli.register(parser.add_subparsers())
    args = parser.parse_args(["query", sql, "--format", "json"])
    capsys.readouterr()
    assert args.func(args, env.settings) == 0
    rows: list[dict[str, str]] = json.loads(capsys.readouterr().out)
    return rows


def ingest_context(env: AwsEnv) -> IngestContext:
    """The context the ingest flow's tasks share: what it passes to the catalog tasks."""
    r = env.resources
    return IngestContext(env.settings, env.spec, env.clients, r.queue_url, r.dlq_url)


def test_update_catalog_registers_the_ingested_partitions_once(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None
) -> None:
    env, _ = lake
    db, client = env.spec.glue_database, env.clients.glue
    registered = [{"Values": list(p.values)} for p in glue.partitions(client, db, "trades")]
    if registered:  # another test of this module ran the flow first
        client.batch_delete_partition(
            DatabaseName=db, TableName="trades", PartitionsToDelete=registered
        )
    first = update_catalog()
    assert first.tables == {"trades": "unchanged", "candles": "unchanged", "spreads": "unchanged"}
    assert first.lake_partitions["trades"] == first.added_partitions["trades"] == 3
    assert "not on AWS" in first.crawler
    assert {p.values for p in glue.partitions(client, db, "trades")} == {
        ("BTCUSDT", "2024-08-08", "23"),
        ("BTCUSDT", "2024-08-09", "00"),
        ("ETHUSDT", "2024-08-09", "00"),
    }
    assert update_catalog().added_partitions == {"trades": 0, "candles": 0, "spreads": 0}


def test_sql_on_the_local_engine_gives_the_exact_answer_of_the_trades(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    env, trades = lake
    update_catalog()
    assert engine_for(env.settings, env.clients) == "local"
    got = query(
        env,
        "SELECT symbol, count(*) AS n, count(DISTINCT trade_id) AS ids, min(price) AS low, "
        "max(price) AS high, sum(quantity) AS volume, min(trade_time) AS first_time "
        "FROM trades GROUP BY symbol ORDER BY symbol",
        capsys,
    )
    expected = []
    for symbol in ("BTCUSDT", "ETHUSDT"):
        mine = [t for t in trades if t.symbol == symbol]
        prices = [Decimal(t.price) for t in mine]
        first = min(t.trade_time for t in mine)
        expected.append(
            {
                "symbol": symbol,
                "n": str(len(mine)),
                "ids": str(len(mine)),
                "low": str(min(prices).quantize(EIGHT)),
                "high": str(max(prices).quantize(EIGHT)),
                "volume": str(sum(Decimal(t.quantity) for t in mine).quantize(EIGHT)),
                "first_time": _athena_time(first),
            }
        )
    assert got == expected


def test_filters_on_partition_columns_read_only_those_partitions(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    env, trades = lake
    update_catalog()
    got = query(
        env,
        'SELECT symbol, "date", hour, count(*) AS n, sum(quote_quantity) AS quote FROM trades '
        "WHERE \"date\" = '2024-08-09' AND hour = '00' AND symbol = 'BTCUSDT' "
        'GROUP BY symbol, "date", hour',
        capsys,
    )
    after_midnight = [t for t in trades if t.symbol == "BTCUSDT" and t.trade_time >= MIDNIGHT]
    quote = sum(Decimal(t.price) * Decimal(t.quantity) for t in after_midnight)
    assert got == [
        {
            "symbol": "BTCUSDT",
            "date": "2024-08-09",
            "hour": "00",
            "n": str(len(after_midnight)),
            "quote": str(quote.quantize(Decimal("1E-16"))),
        }
    ]


def test_unregistered_partitions_stay_invisible_until_registered(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    env, trades = lake
    update_catalog()
    bucket, db = env.spec.bucket.name, env.spec.glue_database
    keys = list(s3.list_keys(env.clients.s3, bucket, "trades/symbol=ETHUSDT/"))
    copies = [k.replace("symbol=ETHUSDT", "symbol=ETHCOPY") for k in keys]
    for key, copy in zip(keys, copies, strict=True):
        s3.put(env.clients.s3, bucket, copy, s3.get(env.clients.s3, bucket, key), "x")
    sql = "SELECT count(*) AS n FROM trades WHERE symbol = 'ETHCOPY'"
    try:
        assert query(env, sql, capsys) == [{"n": "0"}]
        # What the ingest calls for the objects it just wrote.
        ctx = ingest_context(env)
        assert register_partitions.fn(ctx, copies) == 1
        assert register_partitions.fn(ctx, copies) == 0
        eth = sum(t.symbol == "ETHUSDT" for t in trades)
        assert query(env, sql, capsys) == [{"n": str(eth)}]
    finally:
        for copy in copies:
            env.clients.s3.delete_object(Bucket=bucket, Key=copy)
        env.clients.glue.batch_delete_partition(
            DatabaseName=db,
            TableName="trades",
            PartitionsToDelete=[{"Values": ["ETHCOPY", "2024-08-09", "00"]}],
        )


def test_candles_exported_to_the_lake_answer_sql_like_the_trades(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    env, trades = lake
    stored = [
        c
        for symbol in ("BTCUSDT", "ETHUSDT")
        for c in dynamodb.query_candles(
            env.clients.dynamodb, env.spec.table.name, symbol, Interval.M1
        )
    ]
    spans = candle_spans(stored)
    ctx = ingest_context(env)
    keys = export_candles.fn(ctx, spans)
    assert len(keys) == len(spans) == 3
    assert export_candles.fn(ctx, spans) == keys  # a rebuild rewrites the same objects
    listed = list(s3.list_keys(env.clients.s3, env.spec.bucket.name, "candles/"))
    assert sorted(listed) == sorted(keys)
    got = query(
        env,
        "SELECT symbol, open_time, open, high, low, close, volume, quote_volume, trade_count "
        "FROM candles WHERE \"interval\" = '1m' AND trade_count > 0 ORDER BY symbol, open_time",
        capsys,
    )
    reference = sorted(reference_candles(trades).items())
    assert got == [
        {
            "symbol": symbol,
            "open_time": _athena_time(open_time),
            "open": str(c.open.quantize(EIGHT)),
            "high": str(c.high.quantize(EIGHT)),
            "low": str(c.low.quantize(EIGHT)),
            "close": str(c.close.quantize(EIGHT)),
            "volume": str(c.volume.quantize(EIGHT)),
            "quote_volume": str(c.quote_volume.quantize(Decimal("1E-16"))),
            "trade_count": str(c.trade_count),
        }
        for (symbol, open_time), c in reference
    ]


def test_the_query_command_prints_csv_and_a_table(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    env, _ = lake
    update_catalog()
    parser = argparse.ArgumentParser()
    query_cli.register(parser.add_subparsers())
    sql = "SELECT symbol, hour, count(*) AS n FROM trades GROUP BY symbol, hour ORDER BY 1, 2"
    for fmt in ("csv", "table"):
        args = parser.parse_args(["query", sql, "--format", fmt])
        capsys.readouterr()
        assert args.func(args, env.settings) == 0
        out = capsys.readouterr().out
        if fmt == "csv":
            assert out.splitlines()[:2] == ["symbol,hour,n", "BTCUSDT,00,19"]
        else:
            assert "3 row(s) (local)" in out and "ETHUSDT" in out


def test_a_bad_query_names_the_engine_and_the_tables(
    lake: tuple[AwsEnv, list[Trade]], prefixed: None
) -> None:
    env, _ = lake
    with pytest.raises(QueryError, match=r"local engine \(tables named: trades\)"):
        run_sql(env.settings, env.spec, env.clients, "SELECT no_such_column FROM trades")


def _athena_time(ms: int) -> str:
    from tasks.core.keys import utc

    return utc(ms).strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"
