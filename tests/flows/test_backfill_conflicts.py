"""The rebuild writes a window's minutes 100 per transaction; a minute the live ingest writes between
the rebuild's read and its write cancels that transaction, and its minutes are then written one by
one, the changed one re-planned from what the ingest stored: nothing overwritten, every minute exact."""

from __future__ import annotations

import threading
from typing import Any

from tasks.aws import dynamodb
from tasks.backfill import rebuild_candles
from tasks.context import StoreContext
from tasks.core.candles import aggregate
from tasks.core.models import Interval
from tests.builders import BASE_TIME, Trade, kline, trades_frame
from tests.conftest import AwsEnv

MINUTES = 150
CHANGED = 7  # the minute the ingest writes meanwhile


def test_a_minute_the_ingest_writes_during_a_rebuild_is_replanned_not_overwritten(
    aws: AwsEnv,
) -> None:
    trades = [
        Trade(trade_id=i + 1, price=f"{100 + i % 13}.25", trade_time=BASE_TIME + i * 30_000)
        for i in range(2 * MINUTES)
    ]
    lake = trades_frame(trades)
    changed_at = BASE_TIME + CHANGED * 60_000
    # The ingest had seen the minute's first trade only when it stored it.
    [partial] = aggregate(trades_frame([t for t in trades if t.trade_time == changed_at]))
    client, table = aws.clients.dynamodb, aws.spec.table.name
    lock, fired = threading.Lock(), []

    def ingest_meanwhile(**_: Any) -> None:
        with lock:
            if fired:
                return
            fired.append(dynamodb.put_candle(client, table, partial))

    event = "before-call.dynamodb.TransactWriteItems"
    client.meta.events.register(event, ingest_meanwhile)
    try:
        report = rebuild_candles.fn(
            StoreContext(aws.settings, aws.spec, aws.clients),
            "BTCUSDT",
            BASE_TIME,
            BASE_TIME + MINUTES * 60_000 - 1,
            lake,
        )
    finally:
        client.meta.events.unregister(event, ingest_meanwhile)

    assert [c.version for c in fired] == [1]
    assert report.minutes == len(report.written) == MINUTES
    stored = {c.open_time: c for c in dynamodb.query_candles(client, table, "BTCUSDT", Interval.M1)}
    expected = {c.open_time: c for c in aggregate(lake)}
    assert {t: kline(c) for t, c in stored.items()} == {t: kline(c) for t, c in expected.items()}
    # The changed minute was updated on top of the ingest's version, not overwritten blindly.
    assert stored[changed_at].version == 2
    assert stored[changed_at].trade_count == 2
    assert {c.version for t, c in stored.items() if t != changed_at} == {1}
