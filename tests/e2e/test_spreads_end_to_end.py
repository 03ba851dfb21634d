"""End to end: order books -> sampler -> SQS -> ingest-spreads -> spread candles at 1m, 1h and 1d.

The real BTCUSDT/ETHUSDT depth captures over the loopback Binance websocket (with the captures' REST
snapshot) and the BTCMarkets fake's moving AUD books (one of them too thin for the notional) are
sampled every 0.2 s; the samples go through the queue into the ingest-spreads flow. Every stored
candle must equal the summary of the raw samples of its interval, recomputed here independently.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from flows.ingest_spreads import ingest_spreads
from producer.books import BinanceBooks, BtcmBooks
from producer.sinks import SqsSink
from producer.spreads import SpreadSampler
from tasks.aws import spread_records
from tasks.binance_rest import BinanceRest
from tasks.btcmarkets_rest import BtcMarketsRest
from tasks.core.models import Interval
from tasks.core.spread_contract import sample_line
from tasks.core.spreads import SpreadSample, interval_summary, seed_data
from tests.conftest import AwsEnv
from tests.fakes.binance_rest import FakeBinanceRest
from tests.fakes.binance_ws import fake_binance
from tests.fakes.btcmarkets_rest import FakeBtcMarketsRest
from tests.flows.test_ingest_spreads import send_samples
from tests.producer.test_spread_sampler import (
    MARKETS,
    SYMBOLS,
    THIN_BOOK,
    depth_frames,
    drain,
    quick,
    sample_until_replayed,
)

pytestmark = pytest.mark.e2e


def test_sampled_books_become_spread_candles_equal_to_their_raw_samples(
    aws: AwsEnv, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = aws.resources.samples_queue_url

    async def scenario(rest: FakeBinanceRest, btcm: FakeBtcMarketsRest) -> None:
        async with fake_binance(depth_frames(600), frame_delay_s=0.001) as ws:
            settings = quick(aws.settings, binance_ws_url=ws.url)
            with BinanceRest(rest.url) as binance_rest, BtcMarketsRest(btcm.url) as btcm_rest:
                sampler = SpreadSampler(
                    settings,
                    SqsSink(aws.clients.sqs, url, queue_max=100),
                    binance=BinanceBooks(settings, SYMBOLS, binance_rest),
                    btcm=BtcmBooks(MARKETS, btcm_rest),
                )
                await sample_until_replayed(sampler, ws)

    with FakeBinanceRest([]) as rest, FakeBtcMarketsRest() as btcm:
        btcm.set_book("LTC-AUD", *THIN_BOOK)
        asyncio.run(scenario(rest, btcm))
    received = drain(aws, url).samples  # read them here, then let the pipeline have them
    assert {s.market for s, _, _ in received} == {*SYMBOLS, *MARKETS}
    send_samples(aws, [sample_line(s, venue, source) for s, venue, source in received])
    monkeypatch.setenv("CANDLEFLOW_PREFIX", aws.settings.prefix)
    report = ingest_spreads(until_empty=True)
    assert (report.samples, report.rejects) == (len(received), 0)

    # One observation per sample time (an unchanged book sampled twice is one observation).
    observed: dict[str, dict[int, SpreadSample]] = {}
    for s, _, _ in received:
        observed.setdefault(s.market, {}).setdefault(s.ts_ms, s)
    for market, by_time in observed.items():
        for interval in Interval:
            groups: dict[int, list[SpreadSample]] = {}
            for s in by_time.values():
                groups.setdefault(interval.floor(s.ts_ms), []).append(s)
            for open_time, mine in groups.items():
                item = spread_records.read_item(
                    aws.clients.dynamodb, aws.spec.table.name, market, interval, open_time
                )
                assert item is not None, (market, interval)
                want = interval_summary(mine, interval, open_time)
                assert int(item["spread_sample_count"]["N"]) == want.sample_count
                assert int(item["spread_thin_count"]["N"]) == want.thin_count
                data = seed_data(want)
                if data is None:
                    assert market == "LTC-AUD" and "data" not in item
                else:
                    assert [Decimal(v["N"]) for v in item["data"]["L"]] == data, (market, interval)
