"""The ingest flow under hostile inputs and skewed clocks ("proof under fire").

Microsecond trade times, a worker clock behind or ahead of the trades, and poison messages mixed
with good trades in the same batch. Each test runs the flow on the embedded moto server with real
captures and ends the same way: every candle equals the independent computation, every accepted
trade is in the lake exactly once, and every refused line or message is kept somewhere with its
reason (the S3 quarantine or the DLQ), never dropped and never redelivered forever.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import random
import time
from collections import Counter
from functools import cache

import polars as pl
import pytest
from rich.console import Console

from cli.monitor_view import Snapshot, human_seconds, ingest_panel, producers_panel
from flows.ingest_trades import ingest_trades
from tasks.aws import s3, sqs, status_records
from tasks.core.contract import CONTENT_ENCODING, GZIP, encode_body
from tasks.core.heartbeat import producer_attributes
from tasks.ingest import IngestReport
from tasks.status import read_status
from tests.builders import BASE_TIME, Trade, capture_trades
from tests.conftest import AwsEnv
from tests.faults.test_aws_faults import assert_queues_empty, lake_lines
from tests.flows.test_ingest_trades import assert_exact_candles

CAPTURES = ("spot_btcusdt_20240808.gz", "spot_ethusdt_20240809.gz")
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MINUTE = 60_000
SKEW_SETTING = "CANDLEFLOW_MAX_FUTURE_SKEW_S"
DEFAULT_SKEW_MS = 300 * 1000  # tasks/settings.py: max_future_skew_s


@cache
def sample(stride: int) -> tuple[Trade, ...]:
    """Every ``stride``-th trade of each capture: all their minutes (BTCUSDT's cross midnight into
    2024-08-09, ETHUSDT's follow), a few thousand trades at most, so one ingest run stays short."""
    btc, eth = (capture_trades(name) for name in CAPTURES)
    return (*btc[::stride], *eth[::stride])


def deliveries(lines: list[str], seed: int) -> list[list[str]]:
    """The lines shuffled, a tenth twice, split into bodies of 5-300 lines (small ones go plain,
    larger ones gzipped), and two bodies sent twice as whole messages."""
    rnd = random.Random(seed)
    delivered = lines + rnd.sample(lines, len(lines) // 10)
    rnd.shuffle(delivered)
    bodies, i = [], 0
    while i < len(delivered):
        size = rnd.randint(5, 300)
        bodies.append(delivered[i : i + size])
        i += size
    return bodies + rnd.sample(bodies, 2)


def message(lines: list[str], attributes: dict[str, str] | None = None) -> sqs.OutgoingMessage:
    """The body the producer would send (the contract's encoding), with extra attributes."""
    enc = encode_body([line.encode() for line in lines], gzip_min_bytes=2048)
    return sqs.OutgoingMessage(enc.body, {**enc.attributes, **(attributes or {})})


def send(aws: AwsEnv, messages: list[sqs.OutgoingMessage]) -> None:
    for chunk in sqs.chunk_for_batches(messages):
        assert sqs.send_batch(aws.clients.sqs, aws.resources.queue_url, chunk) == []


def ingest(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch, batch_max_messages: int = 10
) -> IngestReport:
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", str(batch_max_messages))
    report = ingest_trades(until_empty=True)
    assert isinstance(report, IngestReport)
    return report


def worker_clock(monkeypatch: pytest.MonkeyPatch, ms: int) -> None:
    """The worker's clock reads ``ms`` (the flow asks it once per batch, and for the heartbeat)."""
    monkeypatch.setattr("flows.ingest_trades.now_ms", lambda: ms)


def quarantined(aws: AwsEnv) -> list[dict[str, str]]:
    """Every row of every quarantine object: message_id, reason, line."""
    bucket = aws.spec.bucket
    return [
        json.loads(row)
        for key in s3.list_keys(aws.clients.s3, bucket.name, bucket.quarantine_prefix + "/")
        for row in s3.get(aws.clients.s3, bucket.name, key).decode().splitlines()
    ]


def dead_letters(aws: AwsEnv) -> dict[str, str]:
    """Body -> candleflow-error of every message in the DLQ (received once, hidden after)."""
    found: dict[str, str] = {}
    while True:
        got = aws.clients.sqs.receive_message(
            QueueUrl=aws.resources.dlq_url,
            MessageAttributeNames=["All"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=600,
        ).get("Messages", [])
        if not got:
            return found
        for m in got:
            attrs = m.get("MessageAttributes", {})
            assert "source-message-id" in attrs
            found[m["Body"]] = attrs["candleflow-error"]["StringValue"]


def parquet_trades(aws: AwsEnv, symbol: str) -> pl.DataFrame:
    """Every Parquet object of ``symbol``'s trades, read with polars through the S3 adapter."""
    bucket = aws.spec.bucket
    keys = [
        k
        for k in s3.list_keys(aws.clients.s3, bucket.name, bucket.trades_prefix + "/")
        if f"symbol={symbol}/" in k
    ]
    assert keys, symbol
    frames = [pl.read_parquet(io.BytesIO(s3.get(aws.clients.s3, bucket.name, k))) for k in keys]
    return pl.concat(frames).sort("trade_id")


def with_micros(t: Trade) -> str:
    """``t``'s payload with T and E in microseconds, as Binance spot sends them since 2025: the
    millisecond times times 1000 plus sub-millisecond digits (deterministic, from the trade id)."""
    line = t.line()
    event = t.event_time or t.trade_time + 1
    for field, ms, extra in (("T", t.trade_time, t.trade_id * 7919), ("E", event, t.trade_id * 31)):
        old = f'"{field}":{ms},'
        assert line.count(old) == 1, (old, line)
        line = line.replace(old, f'"{field}":{ms * 1000 + extra % 1000},')
    return line


def micros_of(line: str, field: str) -> int:
    value = json.loads(line)[field]
    assert isinstance(value, int) and value >= 10**15  # microseconds since the epoch
    return value


# --- 1. microsecond trade times ---------------------------------------------------------------


def test_microsecond_trade_times_give_the_millisecond_candles_and_keep_their_precision(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = list(sample(stride=16))
    payload = {t: with_micros(t) if t.symbol == "BTCUSDT" else t.line() for t in trades}
    send(aws, [message(b) for b in deliveries(list(payload.values()), seed=21)])

    report = ingest(aws, monkeypatch, batch_max_messages=6)

    assert report.rejects == report.dead_lettered == 0, report.reject_reasons
    assert report.new_trades == len(trades)
    # The candles are exactly those of the millisecond trades: buckets from T // 1000.
    assert_exact_candles(aws, trades)
    # The lake keeps each payload once, as sent: BTCUSDT's in microseconds, ETHUSDT's in ms.
    assert sorted(lake_lines(aws)) == sorted(payload.values())
    # The Parquet keeps the microseconds in ts_event (ns); trade_time and event_time are ms.
    btc = parquet_trades(aws, "BTCUSDT")
    mine = sorted((t for t in trades if t.symbol == "BTCUSDT"), key=lambda t: t.trade_id)
    assert btc["trade_id"].to_list() == [t.trade_id for t in mine]
    micros = [micros_of(payload[t], "T") for t in mine]
    assert btc["ts_event"].to_list() == [us * 1000 for us in micros]
    assert any(us % 1000 for us in micros[:5])  # the first few carry sub-ms digits, and keep them
    assert btc["trade_time"].dt.epoch("ms").to_list() == [t.trade_time for t in mine]
    events = [micros_of(payload[t], "E") // 1000 for t in mine]
    assert btc["event_time"].dt.epoch("ms").to_list() == events
    eth = parquet_trades(aws, "ETHUSDT")
    ms = sorted((t.trade_id, t.trade_time) for t in trades if t.symbol == "ETHUSDT")
    assert eth["ts_event"].to_list() == [time_ms * 1_000_000 for _, time_ms in ms]
    assert_queues_empty(aws)


def test_a_producer_reading_microsecond_frames_reports_a_sane_lag(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from producer.batching import Packer
    from producer.parse import parse_frame

    trades = [t for t in sample(stride=200) if t.symbol == "BTCUSDT"]
    packer = Packer(240 * 1024, 4096, 1.0, 240 * 1024)
    for t in trades:
        frame = parse_frame(f'{{"stream":"btcusdt@trade","data":{with_micros(t)}}}')
        assert frame is not None
        assert packer.add(frame, now=0.0) == []
    (body,) = packer.flush_all()
    beat = producer_attributes("producer-1", body.trades, body.last_event_time_ms)
    send(aws, [sqs.OutgoingMessage(body.encoded.body, {**body.encoded.attributes, **beat})])
    report = ingest(aws, monkeypatch)
    assert report.new_trades == len(trades)
    assert_exact_candles(aws, trades)
    (producer,) = status_records.read(aws.clients.dynamodb, aws.spec.table.name).producers
    # SQS stamped the message now; the newest event in it is from 2024: the lag is positive and
    # well under ten years.
    assert 0 <= producer.lag_ms < 10 * 365 * 86_400_000, producer


# --- 2. the worker's clock against the trade times --------------------------------------------


@pytest.mark.parametrize(
    "worker_minus_newest_ms",
    [pytest.param(-4 * MINUTE, id="worker-4min-behind"), pytest.param(60 * MINUTE, id="1h-ahead")],
)
def test_a_worker_clock_within_the_skew_or_ahead_accepts_every_trade_by_its_own_time(
    aws: AwsEnv,
    prefect_harness: None,
    monkeypatch: pytest.MonkeyPatch,
    worker_minus_newest_ms: int,
) -> None:
    trades = list(sample(stride=16))
    newest = max(t.trade_time for t in trades)
    clock = newest + worker_minus_newest_ms
    worker_clock(monkeypatch, clock)
    # Binance's clock (the producer's event time) runs ahead of SQS's: its send lag is negative.
    ahead = int(time.time() * 1000) + 60 * MINUTE
    bodies = deliveries([t.line() for t in trades], seed=22)
    seq = 0
    messages = []
    for b in bodies:
        seq += len(b)
        messages.append(message(b, producer_attributes("producer-1", seq, ahead)))
    send(aws, messages)

    report = ingest(aws, monkeypatch)

    assert report.rejects == report.dead_lettered == 0, report.reject_reasons
    assert report.new_trades == len(trades)
    assert_exact_candles(aws, trades)  # buckets from the trade times, never the worker's clock
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in trades)
    assert_queues_empty(aws)
    # The heartbeats hold a negative producer lag and a clamped wait, and /health still reads.
    status = read_status(aws.clients, aws.spec, SYMBOLS, now_ms=clock)
    assert status.ingest is not None and status.ingest.wait_ms >= 0
    assert [p.lag_ms < 0 for p in status.producers] == [True]
    for row in status.symbols:
        assert row.last_trade_ms == max(t.trade_time for t in trades if t.symbol == row.symbol)
        assert row.lag_s is not None and row.lag_s >= 0
    view = json.loads(json.dumps(status.as_dict()))
    assert view["status"] == "ok", view["problems"]
    out = io.StringIO()
    console = Console(file=out, width=120)
    for panel in (producers_panel, ingest_panel):
        console.print(panel(Snapshot(status=status, status_ms=clock), clock))
    lag = human_seconds(status.producers[0].lag_ms / 1000)
    assert lag.startswith("-") and lag in out.getvalue()  # as the monitor shows it


def test_trades_beyond_the_future_skew_are_quarantined_then_ingested_once_the_setting_is_raised(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = list(sample(stride=16))
    newest = max(t.trade_time for t in trades)
    clock = newest - 10 * MINUTE  # the worker is 10 min behind; the default skew allows 5
    worker_clock(monkeypatch, clock)
    future = [t for t in trades if t.trade_time > clock + DEFAULT_SKEW_MS]
    accepted = [t for t in trades if t.trade_time <= clock + DEFAULT_SKEW_MS]
    assert len(future) > 100 and len(accepted) > 100
    bodies = deliveries([t.line() for t in trades], seed=23)
    send(aws, [message(b) for b in bodies])
    future_lines = {t.line() for t in future}
    delivered_future = Counter(line for b in bodies for line in b if line in future_lines)

    report = ingest(aws, monkeypatch)

    # Not dropped: every delivered future line is in the quarantine, with a reason naming the
    # setting; none is counted in a candle or written to the lake; no message is left behind.
    assert report.rejects == delivered_future.total()
    assert report.dead_lettered == 0
    assert len(report.reject_reasons) == 1, report.reject_reasons
    rows = quarantined(aws)
    assert Counter(r["line"] for r in rows) == delivered_future
    assert all(SKEW_SETTING in r["reason"] and "'T'" in r["reason"] for r in rows)
    assert report.new_trades == len(accepted)
    assert_exact_candles(aws, accepted)
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in accepted)
    assert_queues_empty(aws)
    # Nor do they move the newest-trade heartbeat of their symbol.
    beats = status_records.read(aws.clients.dynamodb, aws.spec.table.name)
    assert beats.last_trade_ms["ETHUSDT"] == max(
        t.trade_time for t in accepted if t.symbol == "ETHUSDT"
    )

    # The operator raises the setting and sends the quarantined lines again: exact, once each.
    monkeypatch.setenv(SKEW_SETTING, str(15 * 60))
    again = sorted({r["line"] for r in rows})
    send(aws, [message(again[i : i + 250]) for i in range(0, len(again), 250)])
    report = ingest(aws, monkeypatch)

    assert report.rejects == report.dead_lettered == 0, report.reject_reasons
    assert report.new_trades == len(future)
    assert_exact_candles(aws, trades)
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in trades)
    assert_queues_empty(aws)


# --- 3. poison in the same batch as good trades -----------------------------------------------

MAX_BODY = 128 * 1024  # under SQS's 256 KiB, so a plain body can be over it too


def poison_lines(after_id: int) -> dict[str, str]:
    """Lines that must be quarantined -> a text their reason holds. Their trade ids are new and
    their minute is a traded one: any of them counted would change a candle."""
    ids = iter(range(after_id + 1, after_id + 100))

    def trade(**fields: object) -> str:
        return Trade(trade_id=next(ids), trade_time=BASE_TIME + 1234, **fields).line()  # type: ignore[arg-type]

    t_letters = trade()
    t_letters = t_letters.replace(f'"t":{json.loads(t_letters)["t"]},', '"t":"abcdef",')
    return {
        t_letters: "field 't' is not a non-negative integer",
        trade(price="1e5"): "field 'p' is not a decimal",
        trade(price="-1.5"): "field 'p' is not a decimal",
        trade(quantity="0.00000000"): "quantity 'q' is not positive",
        trade().replace('"m":true', '"m":"yes"'): "field 'm' is not a boolean",
        trade().replace('"m":true', '"m":1'): "field 'm' is not a boolean",
        trade().replace('"T":', '"T":"yesterday","x":'): "field 'T' is not a non-negative integer",
        trade(symbol="DOGEUSDT"): "unknown symbol (CANDLEFLOW_SYMBOLS is BTCUSDT,ETHUSDT)",
        trade().replace('"e":"trade"', '"e":"aggTrade"'): "event type 'e' is not 'trade'",
        trade().replace('"p":"100.00000000"', '"p":{"v":"100"}'): "hold a JSON object or array",
        f"[{trade()}]": "not a JSON object but list",
        '"trade"': "not a JSON object but str",
        "{not json": "not JSON",
    }


def dead_messages(after_id: int) -> dict[str, tuple[sqs.OutgoingMessage, str]]:
    """Messages the contract refuses as a whole -> (message, a text their DLQ reason holds).
    Their trades are valid and new: any of them counted would change a candle."""

    def lines(count: int, first: int) -> bytes:
        return "\n".join(
            Trade(trade_id=first + i, trade_time=BASE_TIME + 4321, price="7.5").line()
            for i in range(count)
        ).encode()

    gz = {CONTENT_ENCODING: GZIP}
    bomb = gzip.compress((lines(1, after_id + 1) + b"\n") * (16 * MAX_BODY // 128), mtime=0)
    plain = lines(1500, after_id + 10).decode()
    packed = gzip.compress(lines(50, after_id + 2000), mtime=0)
    assert MAX_BODY < len(plain) < 256 * 1024 and len(bomb) < 64 * 1024
    too_big = "decoded body is larger than 131072 bytes (setting CANDLEFLOW_MAX_BODY_BYTES)"
    cases = {
        "gzip bomb": (base64.b64encode(bomb).decode(), gz, too_big),
        "plain over the limit": (plain, {}, too_big),
        "not gzip": (base64.b64encode(lines(50, after_id + 3000)).decode(), gz, "is not gzip"),
        "truncated": (base64.b64encode(packed[:-40]).decode(), gz, "gzip stream is truncated"),
        "brotli": (plain[:5000], {CONTENT_ENCODING: "br"}, "unknown content-encoding 'br'"),
    }
    return {name: (sqs.OutgoingMessage(b, a), why) for name, (b, a, why) in cases.items()}


def test_poison_lines_and_messages_in_the_same_batch_as_good_trades_leave_them_exact(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDLEFLOW_MAX_BODY_BYTES", str(MAX_BODY))
    good = list(sample(stride=20))
    top = max(t.trade_id for t in good)
    poison = poison_lines(top)
    dead = dead_messages(top + 1000)
    rnd = random.Random(24)
    bodies = deliveries([t.line() for t in good], seed=24)
    for line in poison:  # each poison line in a good body, at a random place
        body = rnd.choice(bodies)
        body.insert(rnd.randrange(len(body) + 1), line)
    # A body sent twice carries its poison twice: each copy is kept, the line as often as sent.
    delivered = Counter(line for b in bodies for line in b if line in poison)
    assert set(delivered) == set(poison)
    messages = [message(b) for b in bodies]
    for m, _ in dead.values():
        messages.insert(rnd.randrange(len(messages) + 1), m)
    send(aws, messages)

    report = ingest(aws, monkeypatch, batch_max_messages=len(messages))

    assert report.batches <= 2  # the refused messages share batches with the good ones
    assert report.dead_lettered == len(dead)
    assert report.rejects == delivered.total(), report.reject_reasons
    rows = quarantined(aws)
    assert Counter(r["line"] for r in rows) == delivered
    reasons = {r["line"]: r["reason"] for r in rows}
    for line, why in poison.items():
        assert why in reasons[line], (line, reasons[line])
    assert sqs.depth(aws.clients.sqs, aws.resources.dlq_url) == (len(dead), 0)
    errors = dead_letters(aws)
    assert len(errors) == len(dead)
    for name, (m, why) in dead.items():
        assert why in errors[m.body], (name, errors[m.body])
    # The good trades around them: exact candles, in the lake once, the queue empty.
    assert report.new_trades == len(good)
    assert_exact_candles(aws, good)
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in good)
    assert sqs.depth(aws.clients.sqs, aws.resources.queue_url) == (0, 0)


# --- validated, then crashing the batch -------------------------------------------------------


def overflowing(kind: str) -> list[str]:
    """Lines the expectation suite lets through but the typed trade schema cannot hold."""
    if kind == "Int64":  # 19 digits, as INTEGER_TEXT allows, but over 9223372036854775807
        t, T = Trade(trade_id=777, trade_time=BASE_TIME + 555), Trade(trade_id=778)
        return [
            t.line().replace('"t":777,', '"t":9999999999999999999,'),
            T.line().replace(f'"T":{BASE_TIME},', '"T":9999999999999999999,'),
        ]
    # Decimals as DECIMAL_TEXT allows (up to 29 integer digits) that Decimal(38, 16) cannot hold:
    # a price of 23 digits, and 13-digit p and q whose product has 26.
    return [
        Trade(trade_id=777, price="99999999999999999999999").line(),
        Trade(trade_id=778, price="1000000000000", quantity="1000000000000").line(),
    ]


@pytest.mark.parametrize("kind", ["Int64", "Decimal"])
def test_lines_whose_numbers_overflow_the_schema_are_quarantined_not_fatal(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    good = [Trade(trade_id=i, price="100.5", trade_time=BASE_TIME + i) for i in range(1, 6)]
    bad = overflowing(kind)
    send(aws, [message([t.line() for t in good[:3]] + bad + [t.line() for t in good[3:]])])
    report = ingest(aws, monkeypatch)
    assert report.rejects == len(bad) and report.dead_lettered == 0
    assert sorted(r["line"] for r in quarantined(aws)) == sorted(bad)
    assert_exact_candles(aws, good)
    assert sorted(lake_lines(aws)) == sorted(t.line() for t in good)
    assert_queues_empty(aws)
