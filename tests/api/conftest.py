"""One market world for the API and dashboard tests: the real captures' candles on moto, served.

BTCUSDT and ETHUSDT 1m/1h/1d klines aggregated from the real Binance captures (2024-08-08 23:54 ..
2024-08-09 00:05 UTC); BTCUSDT's 1m spread columns from its real depth stream; a spread-only market
BTC-AUD from made-up books (no BTCMarkets capture exists); one alert and its "cleared"; one open gap
over one BTCUSDT minute. ``api_server`` serves it over real HTTP with uvicorn.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app, uvicorn_config
from infra.provision import provision
from infra.spec import ResourceSpec, resource_spec
from tasks.aws import alert_records, dynamodb, gap_records, spread_records
from tasks.aws.clients import AwsClients
from tasks.core.alert_message import AlertMessage
from tasks.core.anomaly_rules import RuleName
from tasks.core.candles import aggregate
from tasks.core.gaps import Gap
from tasks.core.models import Candle, Interval
from tasks.core.orderbook import Book
from tasks.core.spreads import SpreadSample, interval_summary, sample
from tasks.settings import Settings
from tests.builders import capture_trades, trades_frame
from tests.conftest import free_port

CAPTURES = {
    "BTCUSDT": ("spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"),
    "ETHUSDT": ("spot_ethusdt_20240808.gz", "spot_ethusdt_20240809.gz"),
}
ALERT_MINUTE = 1723161480_000  # 2024-08-08T23:58:00Z
GAP_MINUTE = 1723161720_000  # 2024-08-09T00:02:00Z


@dataclass
class World:
    settings: Settings
    spec: ResourceSpec
    clients: AwsClients
    candles: dict[tuple[str, Interval], list[Candle]] = field(default_factory=dict)
    spread_minutes: dict[str, list[int]] = field(default_factory=dict)
    gap: Gap | None = None

    @property
    def expected(self) -> dict[str, dict[str, int]]:
        """Candles per market and interval, as the dashboard should draw them."""
        counts: dict[str, dict[str, int]] = {}
        for (market, interval), rows in self.candles.items():
            counts.setdefault(market, {})[interval.value] = len(rows)
        for market, minutes in self.spread_minutes.items():
            counts.setdefault(market, {}).setdefault("1m", len(minutes))
        return counts


def _btc_aud_samples(start_ms: int, minutes: int) -> list[SpreadSample]:
    """A made-up BTC-AUD book every 5 s: a slow price walk, spread widening and narrowing."""
    out = []
    for i in range(minutes * 12):
        mid = Decimal(91_000) + Decimal(i % 37) * Decimal("7.5") - Decimal(i % 11) * 3
        half = Decimal(4 + (i % 9))
        book = Book(
            bids=[(mid - half, Decimal("0.08")), (mid - half - 5, Decimal("0.5"))],
            asks=[(mid + half, Decimal("0.07")), (mid + half + 5, Decimal("0.5"))],
        )
        out.append(sample("BTC-AUD", book, Decimal(10_000), start_ms + i * 5000))
    return out


def _write_spreads(world: World, samples: list[SpreadSample]) -> list[int]:
    client, table = world.clients.dynamodb, world.spec.table.name
    minutes: dict[int, list[SpreadSample]] = {}
    for s in samples:
        minutes.setdefault(Interval.M1.floor(s.ts_ms), []).append(s)
    for open_time, mine in sorted(minutes.items()):
        spread_records.write(client, table, interval_summary(mine, Interval.M1, open_time), None, 0)
    return sorted(minutes)


@pytest.fixture(scope="session")
def world(moto_endpoint: str) -> World:
    from tests.flows.test_ingest_spreads import binance_samples

    settings = Settings(
        prefix=f"api-{os.getpid()}",
        symbols=["BTCUSDT", "ETHUSDT"],
        spread_binance_symbols=["BTCUSDT"],
        spread_btcm_markets=["BTC-AUD", "ETH-AUD"],
    )
    spec = resource_spec(settings)
    clients = AwsClients()
    provision(clients, spec)
    world = World(settings, spec, clients)
    client, table = clients.dynamodb, spec.table.name
    for symbol, files in CAPTURES.items():
        trades = trades_frame(capture_trades(*files))
        for interval in Interval:
            rows = [dynamodb.put_candle(client, table, c) for c in aggregate(trades, interval)]
            world.candles[(symbol, interval)] = rows
    world.spread_minutes["BTCUSDT"] = _write_spreads(world, list(binance_samples()))
    first = world.candles[("BTCUSDT", Interval.M1)][0].open_time
    world.spread_minutes["BTC-AUD"] = _write_spreads(world, _btc_aud_samples(first, 12))

    for kind in ("alert", "cleared"):
        message = AlertMessage(
            "BTCUSDT",
            RuleName.PRICE_MOVE,
            kind,
            ALERT_MINUTE if kind == "alert" else ALERT_MINUTE + 120_000,
            "critical" if kind == "alert" else "info",
            f"BTCUSDT up 2.31% in 5 min{' (cleared)' if kind == 'cleared' else ''}",
            "{}",
        )
        assert alert_records.claim(client, table, message)
        alert_records.mark_published(client, table, message, ALERT_MINUTE + 1000, "m-1")
    gap_minute = next(
        c for c in world.candles[("BTCUSDT", Interval.M1)] if c.open_time == GAP_MINUTE
    )
    assert gap_minute.first_trade_id is not None
    world.gap = Gap(
        "BTCUSDT",
        gap_minute.first_trade_id + 10,
        gap_minute.first_trade_id + 19,
        GAP_MINUTE + 1000,
        GAP_MINUTE + 2000,
    )
    assert gap_records.record_new(client, table, [world.gap], GAP_MINUTE + 300_000) == 1
    return world


@dataclass
class Served:
    url: str
    world: World

    @property
    def expected(self) -> dict[str, dict[str, int]]:
        return self.world.expected


@contextmanager
def serve(app: FastAPI, settings: Settings) -> Iterator[str]:
    """``app`` over real HTTP (uvicorn in a thread, configured as the product serves it) on a
    free loopback port; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, settings, port))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def api_server(world: World) -> Iterator[Served]:
    """The API and dashboard of ``world`` over real HTTP."""
    with serve(create_app(world.settings), world.settings) as url:
        yield Served(url, world)
