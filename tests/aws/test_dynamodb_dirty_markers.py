from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from tasks.aws import dynamodb
from tasks.core.candles import aggregate
from tasks.core.models import Interval, empty_candle
from tests.builders import BASE_TIME, Trade, trades_frame
from tests.conftest import AwsEnv

HOUR_2300 = Interval.H1.floor(BASE_TIME)  # 2024-08-08T23:00:00Z
DAY_0808 = Interval.D1.floor(BASE_TIME)


def test_markers_name_the_parents_and_survive_only_a_re_mark(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    minutes = [
        empty_candle("BTCUSDT", Interval.M1, BASE_TIME + i * 60_000, Decimal(1)) for i in range(6)
    ]  # 23:55 .. 00:00: two hours
    assert dynamodb.mark_dirty(client, table, minutes) == 2
    assert dynamodb.mark_dirty(client, table, [replace(minutes[0], interval=Interval.D1)]) == 0
    first = dynamodb.dirty_markers(client, table, Interval.H1)
    assert [(m.symbol, m.interval, m.open_time) for m in first] == [
        ("BTCUSDT", Interval.H1, HOUR_2300),
        ("BTCUSDT", Interval.H1, HOUR_2300 + 3_600_000),
    ]
    assert dynamodb.dirty_markers(client, table, Interval.D1) == []
    # A child changes again after the rollup read the marker: the marker must outlive that rollup.
    dynamodb.mark_dirty(client, table, minutes[:1])
    assert dynamodb.clear_dirty(client, table, first[0]) is False
    assert dynamodb.clear_dirty(client, table, first[1]) is True
    assert dynamodb.clear_dirty(client, table, first[1]) is False  # already gone
    [again] = dynamodb.dirty_markers(client, table, Interval.H1)
    assert again.open_time == HOUR_2300 and again.token != first[0].token
    assert dynamodb.clear_dirty(client, table, again) is True
    assert dynamodb.dirty_markers(client, table, Interval.H1) == []


def test_markers_can_be_read_for_a_window_of_parents(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    hours = [
        empty_candle(symbol, Interval.H1, DAY_0808 + d * 86_400_000, Decimal(1))
        for d in range(3)
        for symbol in ("ETHUSDT", "BTCUSDT")
    ]
    dynamodb.mark_dirty(client, table, hours)
    window = dynamodb.dirty_markers(
        client, table, Interval.D1, DAY_0808 + 86_400_000, DAY_0808 + 2 * 86_400_000
    )
    assert [(m.open_time, m.symbol) for m in window] == [
        (DAY_0808 + 86_400_000, "BTCUSDT"),
        (DAY_0808 + 86_400_000, "ETHUSDT"),
        (DAY_0808 + 2 * 86_400_000, "BTCUSDT"),
        (DAY_0808 + 2 * 86_400_000, "ETHUSDT"),
    ]


def test_numbers_wider_than_28_digits_are_stored_exactly(aws: AwsEnv) -> None:
    [candle] = aggregate(trades_frame([Trade(trade_id=1)]), Interval.D1)
    wide = replace(candle, quote_volume=Decimal("123456789012345678.1234567890123456"))  # 34
    dynamodb.put_candle(aws.clients.dynamodb, aws.spec.table.name, wide)
    key = ("BTCUSDT", Interval.D1, DAY_0808)
    [read] = dynamodb.get_candles(aws.clients.dynamodb, aws.spec.table.name, [key]).values()
    assert read.quote_volume == wide.quote_volume
