"""ingest-spreads on the moto server: real Binance books sampled every 5 s, a BTCMarkets thin book."""

from __future__ import annotations

import io
import random
from decimal import Decimal
from functools import cache

import polars as pl
import pytest

from flows.ingest_spreads import ingest_spreads
from tasks.aws import dynamodb, s3, spread_records
from tasks.core.models import Interval
from tasks.core.orderbook import BinanceBookSync, Book, DepthSnapshot
from tasks.core.spread_contract import sample_line
from tasks.core.spreads import SpreadSample, interval_summary, sample, seed_data, spread_stats
from tasks.query import run_sql
from tests.builders import capture_trades, kline, reference_candles
from tests.conftest import AwsEnv
from tests.core.test_orderbook import capture
from tests.flows.test_ingest_trades import run_ingest, send_lines

NOTIONAL = Decimal(10_000)


@cache
def binance_samples() -> tuple[SpreadSample, ...]:
    """BTCUSDT's real book (snapshot + depth diffs), sampled at the first update of every 5 s."""
    sync = BinanceBookSync("BTCUSDT")
    out: list[SpreadSample] = []
    next_tick = 0
    for message in capture("BTCUSDT")[0]:
        if isinstance(message, DepthSnapshot):
            sync.on_snapshot(message)
            continue
        sync.on_event(message)
        book = sync.book
        if book is not None and message.event_time >= next_tick:
            out.append(sample("BTCUSDT", book, NOTIONAL, message.event_time))
            next_tick = message.event_time - message.event_time % 5000 + 5000
    return tuple(out)


def thin_sample(ts_ms: int) -> SpreadSample:
    book = Book(
        bids=[(Decimal("95000"), Decimal("0.01"))], asks=[(Decimal("95010"), Decimal("0.02"))]
    )
    return sample("BTC-AUD", book, NOTIONAL, ts_ms)


def send_samples(env: AwsEnv, lines: list[bytes], per_message: int = 7) -> None:
    from tasks.aws import sqs
    from tasks.core.contract import encode_body

    url = sqs.queue_url(env.clients.sqs, env.spec.samples_queue.name)
    messages = []
    for i in range(0, len(lines), per_message):
        enc = encode_body(lines[i : i + per_message], 512)
        messages.append(sqs.OutgoingMessage(enc.body, enc.attributes))
    for chunk in sqs.chunk_for_batches(messages):
        assert sqs.send_batch(env.clients.sqs, url, chunk) == []


def stored_item(env: AwsEnv, market: str, interval: Interval, open_time: int) -> dict[str, object]:
    item = spread_records.read_item(
        env.clients.dynamodb, env.spec.table.name, market, interval, open_time
    )
    assert item is not None, (market, interval, open_time)
    return item


def numbers(item: dict[str, object], prefix: str) -> list[Decimal]:
    return [Decimal(item[f"{prefix}_{n}"]["N"]) for n in ("min", "q1", "median", "q3", "max")]  # type: ignore[index]


@pytest.fixture
def env(aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    return aws


def test_spread_candles_come_from_pooled_raw_samples_beside_the_exact_klines(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = capture_trades("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz")
    half = len(trades) // 2
    send_lines(env, [[t.line() for t in trades[i : i + 2000]] for i in range(0, half, 2000)])
    run_ingest(env, monkeypatch)  # the klines of the first half exist before any spread

    samples = list(binance_samples())
    assert len(samples) > 100 and not any(s.thin for s in samples)
    thin = thin_sample(samples[0].ts_ms)
    lines = [sample_line(s, "binance", i) for i, s in enumerate(samples)]
    lines.append(sample_line(thin, "btcmarkets", 1))
    rnd = random.Random(3)
    delivered = lines + rnd.sample(lines, 20)  # redeliveries
    rnd.shuffle(delivered)
    send_samples(env, [*delivered, b'{"market":"BTCUSDT"}'])
    report = ingest_spreads(until_empty=True)
    assert (report.samples, report.rejects) == (len(delivered), 1)

    # The rest of the trades arrive after the spreads: the spread columns stay on the klines.
    send_lines(
        env, [[t.line() for t in trades[i : i + 2000]] for i in range(half, len(trades), 2000)]
    )
    run_ingest(env, monkeypatch)
    klines = {
        c.open_time: c
        for c in dynamodb.query_candles(
            env.clients.dynamodb, env.spec.table.name, "BTCUSDT", Interval.M1
        )
    }
    for (_, t), ref in reference_candles(trades).items():
        assert kline(klines[t]) == kline(ref)

    for interval in (Interval.M1, Interval.H1, Interval.D1):
        groups: dict[int, list[SpreadSample]] = {}
        for s in samples:
            groups.setdefault(interval.floor(s.ts_ms), []).append(s)
        for open_time, mine in groups.items():
            item = stored_item(env, "BTCUSDT", interval, open_time)
            expected = interval_summary(mine, interval, open_time)
            assert expected.spread is not None and expected.mid is not None
            assert int(item["spread_sample_count"]["N"]) == len(mine)  # type: ignore[index]
            assert numbers(item, "spread") == [
                expected.spread.min,
                expected.spread.q1,
                expected.spread.median,
                expected.spread.q3,
                expected.spread.max,
            ]
            data = [Decimal(v["N"]) for v in item["data"]["L"]]  # type: ignore[index]
            assert data == seed_data(expected)
            if interval is Interval.M1:
                assert "version" in item  # the kline of the same minute
    # An hour's median is the pooled samples' median, not a median of minute medians.
    hour = Interval.H1.floor(samples[0].ts_ms)
    in_hour = [s.spread for s in samples if Interval.H1.floor(s.ts_ms) == hour and s.spread]
    pooled = spread_stats(in_hour)
    assert pooled is not None
    assert numbers(stored_item(env, "BTCUSDT", Interval.H1, hour), "spread")[2] == pooled.median

    # The thin BTC-AUD book: counted, flagged, no spread invented; the seed's data array absent.
    thin_item = stored_item(env, "BTC-AUD", Interval.M1, Interval.M1.floor(thin.ts_ms))
    assert thin_item["spread_thin_count"] == {"N": "1"} and "spread_min" not in thin_item
    assert "data" not in thin_item

    # Every distinct sample is in the lake once; the bad line is in quarantine.
    bucket = env.spec.bucket
    keys = list(s3.list_keys(env.clients.s3, bucket.name, f"{bucket.spreads_prefix}/"))
    rows = pl.concat(
        [pl.read_parquet(io.BytesIO(s3.get(env.clients.s3, bucket.name, k))) for k in keys]
    ).unique(["venue", "source_id", "ts"])
    assert rows.height == len(lines)
    # ... and SQL sees them through the Glue table the flow keeps current (a sample redelivered in
    # another batch lands in another object: readers count distinct observations).
    sql = (
        "SELECT venue, count(DISTINCT ts) AS n, max(CASE WHEN thin THEN 1 ELSE 0 END) AS thin "
        "FROM spreads GROUP BY venue ORDER BY venue"
    )
    assert run_sql(env.settings, env.spec, env.clients, sql).records() == [
        {"venue": "binance", "n": str(len(samples)), "thin": "0"},
        {"venue": "btcmarkets", "n": "1", "thin": "1"},  # the thin BTC-AUD book
    ]
    assert list(s3.list_keys(env.clients.s3, bucket.name, f"quarantine/{bucket.spreads_prefix}/"))

    # Idempotent: the same samples again change nothing.
    before = stored_item(env, "BTCUSDT", Interval.D1, Interval.D1.floor(samples[0].ts_ms))
    send_samples(env, lines[:30])
    ingest_spreads(until_empty=True)
    after = stored_item(env, "BTCUSDT", Interval.D1, Interval.D1.floor(samples[0].ts_ms))
    assert {k: v for k, v in after.items() if k != "spread_version"} == {
        k: v for k, v in before.items() if k != "spread_version"
    }


def test_a_day_marked_by_a_run_that_crashed_is_recomputed_by_the_next_run(env: AwsEnv) -> None:
    samples = list(binance_samples())[:40]
    send_samples(env, [sample_line(s, "binance", i) for i, s in enumerate(samples)])
    ingest_spreads(until_empty=True)
    client, table = env.clients.dynamodb, env.spec.table.name
    day = Interval.D1.floor(samples[0].ts_ms)
    good = stored_item(env, "BTCUSDT", Interval.D1, day)
    # A crash between marking the day and recomputing it: the day item lags, the mark stays.
    client.delete_item(TableName=table, Key=dynamodb.key_of("BTCUSDT", Interval.D1, day))
    spread_records.mark_days(client, table, {("BTCUSDT", day)})
    report = ingest_spreads(until_empty=True)  # nothing queued: only the marked day
    assert report.written == {"1d": 1}
    again = stored_item(env, "BTCUSDT", Interval.D1, day)
    assert {k: v for k, v in again.items() if k != "spread_version"} == {
        k: v for k, v in good.items() if k != "spread_version"
    }
    assert spread_records.dirty_days(client, table) == []
