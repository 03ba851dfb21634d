"""Scale-out: four ingest flow runs draining one queue at once still give exact candles.

The real captures, shuffled, with duplicates, every minute spread over many messages, so the four
runs upsert the same minutes concurrently (optimistic locking on the candle's version, retries on
conflict). Every run must do part of the work, and every candle must equal the independent
computation and Binance's official kline.
"""

from __future__ import annotations

import gzip
import random
import threading
from decimal import Decimal

import pytest

from flows.ingest_trades import ingest_trades
from tasks.aws import s3, sqs
from tasks.ingest import IngestReport
from tasks.validate import warm_up
from tests.builders import BASE_TIME, capture_trades
from tests.conftest import AwsEnv
from tests.flows.test_ingest_trades import assert_exact_candles, send_lines, stored

WORKERS = 4


def test_four_concurrent_ingest_runs_on_one_queue_give_exact_candles(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    trades = capture_trades(
        "spot_btcusdt_20240808.gz",
        "spot_btcusdt_20240809.gz",
        "spot_ethusdt_20240808.gz",
        "spot_ethusdt_20240809.gz",
    )
    rnd = random.Random(11)
    delivered = trades + rnd.sample(trades, 4000)
    rnd.shuffle(delivered)  # each message holds trades of many minutes; each minute is in many
    size = 2000  # ~20 messages: every worker gets some, each batch touches every minute
    bodies = [[t.line() for t in delivered[i : i + size]] for i in range(0, len(delivered), size)]
    send_lines(aws, bodies + bodies[:4])
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    monkeypatch.setenv("CANDLEFLOW_BATCH_MAX_MESSAGES", "3")

    warm_up()  # import great-expectations once here, not in four threads at once
    reports: list[IngestReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def worker() -> None:
        start.wait()
        try:
            reports.append(ingest_trades(until_empty=True))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"ingest-{i}") for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(reports) == WORKERS
    # Runs really overlapped: at least three of the four took batches (a run that starts last
    # may find the queue already taken; which one is up to the scheduler).
    assert sum(r.messages > 0 for r in reports) >= 3, [r.messages for r in reports]
    assert sum(r.messages for r in reports) >= len(bodies) + 4
    assert sum(r.rejects + r.dead_lettered for r in reports) == 0

    assert_exact_candles(aws, trades)
    btc = stored(aws, "BTCUSDT")[BASE_TIME]
    assert (btc.open, btc.high, btc.low, btc.close, btc.volume) == tuple(
        map(Decimal, ("61828.00", "61860.80", "61780.00", "61782.25", "15.07702"))
    )
    lake = set()
    for key in s3.list_keys(aws.clients.s3, aws.spec.bucket.name, aws.spec.bucket.raw_prefix):
        lake |= set(
            gzip.decompress(s3.get(aws.clients.s3, aws.spec.bucket.name, key)).decode().splitlines()
        )
    assert lake == {t.line() for t in trades}
    assert sqs.depth(aws.clients.sqs, aws.resources.queue_url) == (0, 0)
