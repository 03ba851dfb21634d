from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from infra.spec import resource_spec
from tasks.aws import dynamodb
from tasks.core.candles import aggregate
from tasks.core.models import Interval
from tasks.errors import ConflictError
from tasks.ingest import IngestContext, upsert_candles
from tests.builders import BASE_TIME, Trade, reference_candles, trades_frame
from tests.conftest import AwsEnv


def test_items_round_trip_exactly(aws: AwsEnv) -> None:
    [candle] = aggregate(
        trades_frame(
            [
                Trade(trade_id=5, price="61828.12345678", quantity="0.00012345"),
                Trade(
                    trade_id=9, price="0.00000001", quantity="99999.99999999", is_buyer_maker=False
                ),
            ]
        )
    )
    written = dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, candle)
    [read] = dynamodb.get_candles(
        aws.clients.dynamodb, aws.spec.table.name, [("BTCUSDT", Interval.M1, BASE_TIME)]
    ).values()
    assert read == written and read.version == 1
    assert read.quote_volume == Decimal("61828.12345678") * Decimal("0.00012345") + Decimal(
        "0.00000001"
    ) * Decimal("99999.99999999")
    assert read.trade_ids == ((5, 5), (9, 9))


def test_a_stale_write_is_refused(aws: AwsEnv) -> None:
    [candle] = aggregate(trades_frame([Trade(trade_id=1)]))
    dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, candle)
    with pytest.raises(ConflictError, match="BTCUSDT_1m 2024-08-08T23:55:00Z changed"):
        dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, candle)  # version 0 again


def test_concurrent_workers_upserting_the_same_minute_lose_no_trade(aws: AwsEnv) -> None:
    trades = [
        Trade(trade_id=i, price=f"{100 + i % 7}.5", trade_time=BASE_TIME + i) for i in range(200)
    ]
    # Four workers with overlapping slices, all starting from the same (empty) stored state.
    slices = [trades[0:80], trades[50:140], trades[120:200], trades[10:30] + trades[150:160]]
    ctx = IngestContext(aws.settings, resource_spec(aws.settings), aws.clients, "", "")
    errors: list[BaseException] = []
    start = threading.Barrier(len(slices))

    def worker(part: list[Trade]) -> None:
        try:
            start.wait()
            upsert_candles.fn(ctx, trades_frame(part), {})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    [stored] = dynamodb.get_candles(
        aws.clients.dynamodb, aws.spec.table.name, [("BTCUSDT", Interval.M1, BASE_TIME)]
    ).values()
    ref = reference_candles(trades)[("BTCUSDT", BASE_TIME)]
    assert (stored.open, stored.close, stored.volume, stored.quote_volume, stored.trade_count) == (
        ref.open,
        ref.close,
        ref.volume,
        ref.quote_volume,
        ref.trade_count,
    )
    assert stored.trade_ids == ((0, 199),)


def test_kline_writes_keep_the_other_columns_of_the_item_and_skip_items_without_a_kline(
    aws: AwsEnv,
) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    later = BASE_TIME + 60_000
    for t in (BASE_TIME, later):  # columns written apart from the kline (spreads, issue 5)
        client.update_item(
            TableName=table,
            Key=dynamodb.key_of("BTCUSDT", Interval.M1, t),
            UpdateExpression="SET spread_sample_count = :n",
            ExpressionAttributeValues={":n": {"N": "12"}},
        )
    [candle] = aggregate(trades_frame([Trade(trade_id=1)]))
    written = dynamodb.put_candle(client, table, candle)
    grown = aggregate(trades_frame([Trade(trade_id=1), Trade(trade_id=2, price="101.0")]))[0]
    dynamodb.put_candle(client, table, grown.with_version(written.version))
    item = client.get_item(TableName=table, Key=dynamodb.key_of("BTCUSDT", Interval.M1, BASE_TIME))
    assert item["Item"]["spread_sample_count"] == {"N": "12"}
    assert item["Item"]["trade_count"] == {"N": "2"}
    # The minute with spread columns only is no kline: neither queries nor reads return it.
    got = list(dynamodb.query_candles(client, table, "BTCUSDT", Interval.M1))
    assert [c.open_time for c in got] == [BASE_TIME]
    assert dynamodb.get_candles(client, table, [("BTCUSDT", Interval.M1, later)]) == {}
