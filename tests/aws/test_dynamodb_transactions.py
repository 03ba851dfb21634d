"""``dynamodb.put_candles``: up to 100 candles in one transaction, all written or none, each on the
condition ``put_candle`` writes it on; and the emulator rolls a cancelled one back exactly."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tasks.aws import dynamodb
from tasks.core.candles import aggregate
from tasks.core.models import Candle, Interval
from tasks.errors import ConflictError
from tests.builders import BASE_TIME, Trade, trades_frame
from tests.conftest import AwsEnv


def minutes(count: int, price: str = "100.5") -> list[Candle]:
    trades = [
        Trade(trade_id=i + 1, price=price, trade_time=BASE_TIME + i * 60_000) for i in range(count)
    ]
    return aggregate(trades_frame(trades))


def stored(aws: AwsEnv, candles: list[Candle]) -> dict[int, Candle]:
    keys = [(c.symbol, c.interval, c.open_time) for c in candles]
    found = dynamodb.get_candles(aws.clients.dynamodb, aws.spec.table.name, keys)
    return {k[2]: c for k, c in found.items()}


def test_a_hundred_new_candles_are_written_in_one_transaction(aws: AwsEnv) -> None:
    candles = minutes(100)
    written = dynamodb.put_candles(aws.clients.dynamodb, aws.spec.table.name, candles)
    assert [c.version for c in written] == [1] * 100
    assert stored(aws, candles) == {c.open_time: c for c in written}


def test_stored_candles_are_updated_on_their_version(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    first = dynamodb.put_candles(client, table, minutes(5))
    changed = minutes(5, price="101.25")
    again = dynamodb.put_candles(
        client,
        table,
        [new.with_version(old.version) for new, old in zip(changed, first, strict=True)],
    )
    assert [c.version for c in again] == [2] * 5
    assert {c.close for c in stored(aws, changed).values()} == {Decimal("101.25")}


def test_one_changed_minute_cancels_the_whole_transaction(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    before = dynamodb.put_candles(client, table, minutes(3))
    # Another writer moves the third minute to version 2 meanwhile.
    dynamodb.put_candle(client, table, minutes(3, price="99")[2].with_version(1))
    newer = minutes(3, price="102")
    fresh = [*newer[:2], *minutes(5)[3:]]  # two updates of version 1, two new minutes ...
    stale = newer[2].with_version(1)  # ... and a write of a version no longer stored
    attempt = [fresh[0].with_version(1), fresh[1].with_version(1), fresh[2], fresh[3], stale]
    with pytest.raises(ConflictError, match="transaction cancelled"):
        dynamodb.put_candles(client, table, attempt)
    after = stored(aws, minutes(5))
    # Nothing of it was written: the updates applied before the failing action are rolled back.
    assert after[before[0].open_time] == before[0]
    assert after[before[1].open_time] == before[1]
    assert after[before[2].open_time].close == Decimal("99")
    assert set(after) == {c.open_time for c in before}
    assert all(c.interval is Interval.M1 for c in after.values())


def test_a_new_minute_already_stored_cancels_it_too(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    candles = minutes(4)
    dynamodb.put_candle(client, table, candles[1])
    with pytest.raises(ConflictError, match="ConditionalCheckFailed"):
        dynamodb.put_candles(client, table, candles)
    assert set(stored(aws, candles)) == {candles[1].open_time}


def test_more_than_a_hundred_candles_are_refused_before_any_call(aws: AwsEnv) -> None:
    with pytest.raises(ValueError, match="101 candles"):
        dynamodb.put_candles(aws.clients.dynamodb, aws.spec.table.name, minutes(101))
    assert stored(aws, minutes(101)) == {}
