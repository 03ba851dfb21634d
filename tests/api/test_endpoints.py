"""Every endpoint over the real captures' candles on moto: shapes, exact values, bad input, limits."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from httpx import Client as Http

from api.app import MAX_LIMIT, create_app
from tasks.aws import sqs, status_records
from tasks.aws.clients import AwsClients
from tasks.core.heartbeat import IngestBeat, ProducerBeat
from tasks.core.keys import iso_time
from tasks.core.models import Candle, Interval
from tests.api.conftest import ALERT_MINUTE, GAP_MINUTE, World, serve

READ_ONLY = {
    "Query",
    "GetItem",
    "BatchGetItem",
    "GetQueueUrl",
    "GetQueueAttributes",
    "GetMetricStatistics",
}


@pytest.fixture(scope="module")
def calls() -> list[str]:
    return []


@pytest.fixture(scope="module")
def api(world: World, calls: list[str]) -> Iterator[Http]:
    clients = AwsClients()
    clients.session.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    with (
        serve(create_app(world.settings, clients), world.settings) as url,
        Http(base_url=url) as client,
    ):
        yield client


DECIMALS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)
INTS = ("trade_count", "first_trade_id", "last_trade_id")


def kline_of(row: dict[str, Any]) -> dict[str, object]:
    return {**{n: Decimal(row[n]) for n in DECIMALS}, **{n: row[n] for n in INTS}}


def kline_fields(c: Candle) -> dict[str, object]:
    return {**{n: getattr(c, n) for n in DECIMALS}, **{n: getattr(c, n) for n in INTS}}


def test_markets_lists_the_configured_markets_that_have_data_in_the_seed_shape(
    api: Http,
) -> None:
    got = api.get("/markets")
    assert got.status_code == 200
    assert got.json() == [
        "BTCUSDT_1m",
        "BTCUSDT_1h",
        "BTCUSDT_1d",
        "ETHUSDT_1m",
        "ETHUSDT_1h",
        "ETHUSDT_1d",
        "BTC-AUD_1m",
    ]  # ETH-AUD is configured but has no data; pipeline partitions (_gaps...) never appear


def test_candles_are_the_stored_klines_exactly_with_gaps_and_spreads(
    api: Http, world: World
) -> None:
    for (symbol, interval), stored in world.candles.items():
        body = api.get(f"/candles/{symbol}", params={"interval": interval.value}).json()
        assert (body["market"], body["interval"], body["kind"]) == (
            symbol,
            interval.value,
            "trades",
        )
        assert [c["open_time"] for c in body["candles"]] == [iso_time(c.open_time) for c in stored]
        for row, candle in zip(body["candles"], stored, strict=True):
            assert row["time"] == candle.open_time // 1000
            assert kline_of(row) == kline_fields(candle)
    minutes = api.get("/candles/BTCUSDT").json()["candles"]
    incomplete = [c["open_time"] for c in minutes if not c["complete"]]
    assert incomplete == [iso_time(GAP_MINUTE)]
    hours = api.get("/candles/BTCUSDT", params={"interval": "1h"}).json()["candles"]
    assert [c["complete"] for c in hours] == [True, False]  # the gap's hour, 00:00
    with_spread = [c for c in minutes if c["spread"] is not None]
    assert len(with_spread) == len(world.spread_minutes["BTCUSDT"])
    for c in with_spread:
        s = c["spread"]
        assert s["samples"] > 0 and s["thin"] == 0
        assert (
            Decimal(s["min"])
            <= Decimal(s["q1"])
            <= Decimal(s["median"])
            <= Decimal(s["q3"])
            <= Decimal(s["max"])
        )
    assert all(c["spread"] is None for c in api.get("/candles/ETHUSDT").json()["candles"])


def test_a_spread_only_market_gives_its_mid_price_candles(api: Http, world: World) -> None:
    body = api.get("/candles/BTC-AUD").json()
    assert body["kind"] == "mid"
    assert len(body["candles"]) == len(world.spread_minutes["BTC-AUD"])
    for c in body["candles"]:
        assert c["volume"] is None and c["trade_count"] is None
        assert Decimal(c["low"]) <= Decimal(c["open"]) <= Decimal(c["high"])
        assert c["spread"]["samples"] == 12


def test_start_end_and_limit_select_a_window(api: Http, world: World) -> None:
    stored = world.candles[("BTCUSDT", Interval.M1)]
    newest = api.get("/candles/BTCUSDT", params={"limit": 3}).json()["candles"]
    assert [c["time"] for c in newest] == [c.open_time // 1000 for c in stored[-3:]]
    window = api.get(
        "/candles/BTCUSDT",
        params={
            "start": iso_time(stored[2].open_time),
            "end": str(stored[5].open_time),
            "limit": 2,
        },
    ).json()["candles"]
    assert [c["time"] for c in window] == [c.open_time // 1000 for c in stored[2:4]]
    tail = api.get("/candles/BTCUSDT", params={"start": stored[-1].open_time}).json()["candles"]
    assert [c["time"] for c in tail] == [stored[-1].open_time // 1000]
    capped = api.get("/candles/BTCUSDT", params={"limit": 50_000}).json()
    assert capped["limit"] == MAX_LIMIT and len(capped["candles"]) == len(stored)


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        (
            "/candles/DOGEUSDT",
            {},
            404,
            "unknown market 'DOGEUSDT'; known markets: BTCUSDT, ETHUSDT",
        ),
        ("/candles/_gaps", {}, 404, "unknown market '_gaps'"),
        ("/candles/_alert_state", {}, 404, "unknown market"),
        ("/candles/BTC%23USDT", {}, 422, "pattern"),
        ("/candles/BTCUSDT", {"interval": "5m"}, 422, "'1m', '1h' or '1d'"),
        ("/candles/BTCUSDT", {"limit": 0}, 422, "greater than or equal to 1"),
        ("/candles/BTCUSDT", {"limit": "ten"}, 422, "valid integer"),
        ("/candles/BTCUSDT", {"start": "yesterday"}, 422, "start='yesterday' is not a time"),
        (
            "/candles/BTCUSDT",
            {"start": "2024-08-09T00:00:00Z", "end": "2024-08-08T00:00:00Z"},
            422,
            "end (2024-08-08T00:00:00Z) is before start",
        ),
        ("/data/BTCUSDT_5m", {}, 404, "unknown market id 'BTCUSDT_5m'"),
        ("/data/_gaps_1m", {}, 404, "unknown market id '_gaps_1m'"),
        ("/data/_dirty_1h", {}, 404, "unknown market id"),
        ("/data/BTCUSDT", {}, 404, "use <market>_<1m|1h|1d>"),
        ("/alerts", {"market": "XRPUSDT"}, 404, "unknown market 'XRPUSDT'"),
        ("/alerts", {"limit": 1000}, 422, "less than or equal to 200"),
    ],
)
def test_bad_input_gets_a_clear_error(
    api: Http, path: str, params: dict[str, object], status: int, says: str
) -> None:
    got = api.get(path, params=params)
    assert got.status_code == status, got.text
    assert says in got.text


def test_data_gives_the_seeds_records_newest_first_with_exact_numbers(
    api: Http, world: World
) -> None:
    got = api.get("/data/BTCUSDT_1m")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    stored = world.candles[("BTCUSDT", Interval.M1)][::-1]
    records = got.json(parse_float=Decimal)
    assert [r["timestamp"] for r in records] == [iso_time(c.open_time) for c in stored]
    for r, c in zip(records, stored, strict=True):
        assert r["marketid"] == "BTCUSDT_1m"
        assert r["data"][:4] == [c.open, c.high, c.low, c.close]
        assert len(r["data"]) in (4, 9)  # + spread min, q1, median, q3, max where sampled
    assert sum(len(r["data"]) == 9 for r in records) == len(world.spread_minutes["BTCUSDT"])
    # The number text is the stored decimal, not a float's approximation.
    assert '"data":[61607.99,61608,61602.01,61602.02' in got.text
    hours = api.get("/data/ETHUSDT_1h").json()
    assert [r["marketid"] for r in hours] == ["ETHUSDT_1h"] * 2


def test_alerts_newest_first_and_per_market(api: Http) -> None:
    alerts = api.get("/alerts").json()
    assert [(a["kind"], a["time"]) for a in alerts] == [
        ("cleared", ALERT_MINUTE // 1000 + 120),
        ("alert", ALERT_MINUTE // 1000),
    ]
    assert (
        alerts[1]["subject"] == "BTCUSDT up 2.31% in 5 min" and alerts[1]["severity"] == "critical"
    )
    assert api.get("/alerts", params={"market": "ETHUSDT"}).json() == []
    assert len(api.get("/alerts", params={"market": "BTCUSDT", "limit": 1}).json()) == 1


def test_health_reports_depths_heartbeats_lag_and_gaps(api: Http, world: World) -> None:
    clients, spec = world.clients, world.spec
    body = api.get("/health").json()
    btc = next(s for s in body["symbols"] if s["symbol"] == "BTCUSDT")
    assert (btc["last_candle"], btc["open_gaps"], btc["missing_trades"]) == (
        "2024-08-09T00:05:00Z",
        1,
        10,
    )
    assert body["status"] == "degraded"
    assert any("BTCUSDT: 1 open gaps (10 trades)" in p for p in body["problems"])

    now = body["checked_ms"]
    status_records.record(
        clients.dynamodb,
        spec.table.name,
        IngestBeat(now - 5000, 12, 34_419, 1.5, 800),
        {"BTCUSDT": now - 6000},
        [ProducerBeat("host-1", now - 5500, 90_000, 120, 950.5)],
    )
    url = sqs.queue_url(clients.sqs, spec.queue.dlq_name)
    clients.sqs.send_message(QueueUrl=url, MessageBody="not json")
    try:
        body = api.get("/health").json()
    finally:
        clients.sqs.purge_queue(QueueUrl=url)
    assert body["ingest"]["trades"] == 34_419 and body["ingest"]["wait_ms"] == 800
    assert body["producers"] == [
        {"producer": "host-1", "sent_ms": now - 5500, "seq": 90_000, "lag_ms": 120, "rate": 950.5}
    ]
    btc = next(s for s in body["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["last_trade_ms"] == now - 6000 and 6 <= btc["lag_s"] < 60
    trades_queue = body["queues"][0]
    assert (trades_queue["name"], trades_queue["dlq_visible"]) == (spec.queue.name, 1)
    assert any(
        f"1 messages in the dead-letter queue {spec.queue.dlq_name}" in p for p in body["problems"]
    )
    assert body["oldest_message_age_s"] is None  # the emulator publishes no CloudWatch metrics


def test_the_api_only_ever_reads(api: Http, calls: list[str]) -> None:
    for path in ("/markets", "/data/BTCUSDT_1m", "/candles/BTCUSDT", "/alerts", "/health"):
        assert api.get(path).status_code == 200
    assert calls and set(calls) <= READ_ONLY, set(calls) - READ_ONLY


def test_openapi_documents_every_endpoint(api: Http) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/markets", "/data/{marketid}", "/candles/{market}", "/alerts", "/health"} <= set(paths)
    assert api.get("/docs").status_code == 200
    assert api.get("/livez").json() == {"ok": True}


def test_each_client_has_its_own_rate_limit_budget(world: World) -> None:
    settings = world.settings.model_copy(update={"api_rate_limit": 5, "api_rate_window_s": 300})
    with serve(create_app(settings), settings) as url, Http(base_url=url) as client:
        assert [client.get("/markets").status_code for _ in range(5)] == [200] * 5
        refused = client.get("/markets")
        assert refused.status_code == 429
        assert "5 requests per 300 s per client" in refused.json()["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 300
        # X-Forwarded-For is ignored unless trusted: a client cannot pick a fresh address.
        assert client.get("/markets", headers={"X-Forwarded-For": "10.0.0.9"}).status_code == 429
    trusted = settings.model_copy(update={"api_trust_forwarded_for": True})
    with serve(create_app(trusted), trusted) as url, Http(base_url=url) as client:
        for ip in ("10.0.0.1", "10.0.0.2"):
            got = [
                client.get("/markets", headers={"X-Forwarded-For": f"{ip}, 172.16.0.1"}).status_code
                for _ in range(6)
            ]
            assert got == [200] * 5 + [429]
