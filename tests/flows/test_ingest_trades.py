from __future__ import annotations

import json
import random
from decimal import Decimal

from flows.ingest_trades import ingest_trades
from tasks.aws import dynamodb, s3, sqs
from tasks.core.contract import encode_body
from tasks.core.models import Interval
from tests.builders import BASE_TIME, Trade, capture_trades, kline, reference_candles
from tests.conftest import AwsEnv


def send_lines(aws: AwsEnv, bodies: list[list[str]], gzip_min_bytes: int = 2048) -> None:
    messages = []
    for lines in bodies:
        enc = encode_body([line.encode() for line in lines], gzip_min_bytes)
        messages.append(sqs.OutgoingMessage(enc.body, enc.attributes))
    for chunk in sqs.chunk_for_batches(messages):
        assert sqs.send_batch(aws.clients.sqs, aws.resources.queue_url, chunk) == []


def run_ingest(aws: AwsEnv, monkeypatch: object) -> object:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", "7")
    return ingest_trades(until_empty=True)


def stored(aws: AwsEnv, symbol: str) -> dict[int, dynamodb.Candle]:
    return {
        c.open_time: c
        for c in dynamodb.query_candles(
            aws.clients.dynamodb, aws.spec.table.name, symbol, Interval.M1
        )
    }


def assert_exact_candles(aws: AwsEnv, trades: list[Trade]) -> None:
    """Every 1m candle is the reference kline of its minute; no other minute has a candle."""
    expected = reference_candles(trades)
    for symbol in sorted({t.symbol for t in trades}):
        got = stored(aws, symbol)
        mine = {t: ref for (s, t), ref in expected.items() if s == symbol}
        assert sorted(got) == sorted(mine), symbol
        for minute, ref in mine.items():
            assert kline(got[minute]) == kline(ref), (symbol, minute)


def test_real_captures_shuffled_duplicated_and_split_give_exact_candles(
    aws: AwsEnv, prefect_harness: None, monkeypatch: object
) -> None:
    trades = capture_trades("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
    rnd = random.Random(7)
    delivered = trades + rnd.sample(trades, 3000)
    rnd.shuffle(delivered)
    bodies = [[t.line() for t in delivered[i : i + 700]] for i in range(0, len(delivered), 700)]
    send_lines(aws, bodies + bodies[:3])  # whole messages redelivered too
    report = run_ingest(aws, monkeypatch)
    assert report.rejects == 0 and report.dead_lettered == 0  # type: ignore[attr-defined]
    assert report.new_trades == len(trades)  # type: ignore[attr-defined]
    expected = reference_candles(trades)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        got = stored(aws, symbol)
        mine = {t: r for (s, t), r in expected.items() if s == symbol}
        assert set(mine) <= set(got)
        for t, ref in mine.items():
            assert kline(got[t]) == kline(ref), (symbol, t)
    btc = stored(aws, "BTCUSDT")[BASE_TIME]
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume) == tuple(
        map(Decimal, ("61828.00", "61860.80", "61780.00", "61782.25", "15.07702"))
    )
    # Every accepted trade is in the lake once, as its exact payload line.
    lake_lines = []
    for key in s3.list_keys(aws.clients.s3, aws.spec.bucket.name, aws.spec.bucket.raw_prefix):
        import gzip

        body = gzip.decompress(s3.get(aws.clients.s3, aws.spec.bucket.name, key))
        lake_lines += body.decode().splitlines()
    assert sorted(lake_lines) == sorted(t.line() for t in trades)
    parquet = list(
        s3.list_keys(aws.clients.s3, aws.spec.bucket.name, aws.spec.bucket.trades_prefix + "/")
    )
    assert any("symbol=BTCUSDT/date=2024-08-08/hour=23/" in k for k in parquet)
    assert sqs.depth(aws.clients.sqs, aws.resources.queue_url) == (0, 0)


def test_poison_lines_are_quarantined_with_reasons_and_good_trades_still_land(
    aws: AwsEnv, prefect_harness: None, monkeypatch: object
) -> None:
    good = [Trade(trade_id=i, price="100.5", trade_time=BASE_TIME + i) for i in range(1, 6)]
    bad = [
        "not json at all",
        Trade(trade_id=90, price="-1").line(),
        Trade(trade_id=91, symbol="DOGEUSDT").line(),
        Trade(trade_id=92, quantity="0.00000000").line(),
        json.dumps({"e": "trade", "s": "BTCUSDT"}),
        Trade(trade_id=93, trade_time=4_102_444_800_000).line(),  # 2100: not sane
    ]
    send_lines(aws, [[t.line() for t in good] + bad])
    aws.clients.sqs.send_message(
        QueueUrl=aws.resources.queue_url,
        MessageBody="@@@ not base64",
        MessageAttributes={"content-encoding": {"DataType": "String", "StringValue": "gzip"}},
    )
    report = run_ingest(aws, monkeypatch)
    assert report.rejects == len(bad), report.reject_reasons  # type: ignore[attr-defined]
    assert report.dead_lettered == 1  # type: ignore[attr-defined]
    keys = list(
        s3.list_keys(aws.clients.s3, aws.spec.bucket.name, aws.spec.bucket.quarantine_prefix)
    )
    rows = [
        json.loads(x)
        for k in keys
        for x in s3.get(aws.clients.s3, aws.spec.bucket.name, k).splitlines()
    ]
    reasons = {r["line"]: r["reason"] for r in rows}
    assert set(reasons) == set(bad)
    assert "not JSON" in reasons["not json at all"]
    assert "unknown symbol" in reasons[bad[2]]
    assert "not positive" in reasons[bad[3]]
    assert "not sane" in reasons[bad[5]]
    dlq = aws.clients.sqs.receive_message(
        QueueUrl=aws.resources.dlq_url,
        MessageAttributeNames=["All"],
        MaxNumberOfMessages=10,
    )["Messages"]
    assert (
        len(dlq) == 1
        and "not base64" in dlq[0]["MessageAttributes"]["candleflow-error"]["StringValue"]
    )
    candle = stored(aws, "BTCUSDT")[BASE_TIME]
    assert candle.trade_count == 5 and candle.volume == Decimal(5)


def test_empty_minutes_get_binance_empty_klines_and_late_trades_update_them(
    aws: AwsEnv, prefect_harness: None, monkeypatch: object
) -> None:
    minute = 60_000
    send_lines(
        aws,
        [
            [Trade(trade_id=1, price="10", trade_time=BASE_TIME).line()],
            [Trade(trade_id=4, price="13", trade_time=BASE_TIME + 3 * minute).line()],
        ],
    )
    run_ingest(aws, monkeypatch)
    candles = stored(aws, "BTCUSDT")
    assert sorted(candles) == [BASE_TIME + i * minute for i in range(4)]
    for i in (1, 2):
        c = candles[BASE_TIME + i * minute]
        assert (c.open, c.high, c.low, c.close) == (Decimal(10),) * 4
        assert (c.volume, c.trade_count, c.first_trade_id) == (0, 0, None)
    # Late trades of minutes 1 and 2 arrive: the empty klines become real ones, in id order.
    send_lines(
        aws,
        [
            [Trade(trade_id=3, price="12", trade_time=BASE_TIME + 2 * minute).line()],
            [Trade(trade_id=2, price="11", trade_time=BASE_TIME + minute + 5).line()],
        ],
    )
    run_ingest(aws, monkeypatch)
    candles = stored(aws, "BTCUSDT")
    assert [(c.close, c.trade_count) for _, c in sorted(candles.items())] == [
        (Decimal(p), 1) for p in ("10", "11", "12", "13")
    ]


def test_a_late_trade_before_an_empty_minute_moves_its_carried_close(
    aws: AwsEnv, prefect_harness: None, monkeypatch: object
) -> None:
    minute = 60_000
    send_lines(
        aws,
        [
            [Trade(trade_id=1, price="10", trade_time=BASE_TIME).line()],
            [Trade(trade_id=3, price="13", trade_time=BASE_TIME + 2 * minute).line()],
        ],
    )
    run_ingest(aws, monkeypatch)
    assert stored(aws, "BTCUSDT")[BASE_TIME + minute].close == Decimal(10)
    # Trade 2 belongs to minute 0 and closes it: the empty minute 1 must now carry 11.
    send_lines(aws, [[Trade(trade_id=2, price="11", trade_time=BASE_TIME + 30_000).line()]])
    run_ingest(aws, monkeypatch)
    candles = stored(aws, "BTCUSDT")
    assert candles[BASE_TIME].close == Decimal(11) and candles[BASE_TIME].trade_count == 2
    empty = candles[BASE_TIME + minute]
    assert (empty.open, empty.close, empty.trade_count) == (Decimal(11), Decimal(11), 0)


def test_ingest_marks_touched_hours_and_the_rollup_then_builds_them_exactly(
    aws: AwsEnv, prefect_harness: None, monkeypatch: object
) -> None:
    from flows.rollup_candles import rollup_candles
    from tasks.core.candles import aggregate
    from tests.builders import trades_frame

    trades = capture_trades("spot_ethusdt_20240808.gz", "spot_ethusdt_20240809.gz")
    send_lines(aws, [[t.line() for t in trades[i : i + 2000]] for i in range(0, len(trades), 2000)])
    run_ingest(aws, monkeypatch)
    markers = list(dynamodb.dirty_markers(aws.clients.dynamodb, aws.spec.table.name, Interval.H1))
    assert {(m.symbol, m.open_time) for m in markers} == {
        ("ETHUSDT", BASE_TIME - 55 * 60_000),  # 2024-08-08 23:00
        ("ETHUSDT", BASE_TIME + 5 * 60_000),  # 2024-08-09 00:00
    }
    rollup_candles(interval="1h", symbols=["ETHUSDT"])
    hours = {
        c.open_time: c
        for c in dynamodb.query_candles(
            aws.clients.dynamodb, aws.spec.table.name, "ETHUSDT", Interval.H1
        )
    }
    direct = {c.open_time: c for c in aggregate(trades_frame(trades), Interval.H1)}
    assert sorted(hours) == sorted(direct)
    for t, c in direct.items():
        assert kline(hours[t]) == kline(c)
    assert (
        list(dynamodb.dirty_markers(aws.clients.dynamodb, aws.spec.table.name, Interval.H1)) == []
    )
