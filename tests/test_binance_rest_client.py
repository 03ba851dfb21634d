"""The Binance REST client against the loopback fake over real HTTP, on the real BTCUSDT capture."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tasks.binance_rest import (
    BinanceBanned,
    BinanceRejected,
    BinanceRest,
    BinanceUnavailable,
    TradesMissing,
)
from tasks.core.binance_rest import depth_weight, rest_trades_frame
from tasks.errors import DecodeError
from tests.builders import Trade, capture_trades
from tests.conftest import free_port
from tests.fakes.binance_rest import FakeBinanceRest, capture_depth, quote_qty

CAPTURE = capture_trades("spot_btcusdt_20240808.gz")
FIRST = CAPTURE[0].trade_id  # 3735683259
LAST = CAPTURE[-1].trade_id


class Clock:
    """Shared by the client and the fake: ``sleep`` records each wait and moves time on."""

    def __init__(self, now: float = 1_723_161_300.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeBinanceRest]:
    with FakeBinanceRest(CAPTURE, clock=clock) as server:
        yield server


def client(fake: FakeBinanceRest, clock: Clock, **options: Any) -> BinanceRest:
    return BinanceRest(
        fake.url,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(7),
        **options,
    )


def fetched_from_ids(fake: FakeBinanceRest) -> list[tuple[int, int]]:
    return [
        (int(r.params["fromId"]), int(r.params["limit"]))
        for r in fake.requests
        if r.path == "/api/v3/historicalTrades"
    ]


def test_a_range_over_several_pages_equals_the_captures_trades(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    first, last = FIRST + 100, FIRST + 2600
    weights: list[int] = []
    with client(fake, clock, before_request=weights.append) as binance:
        trades = binance.fetch_trades("BTCUSDT", first, last)

    expected = [t for t in CAPTURE if first <= t.trade_id <= last]
    assert trades.height == len(expected) == 2501
    assert trades.select(
        "trade_id", "price", "quantity", "trade_time", "is_buyer_maker"
    ).rows() == [
        (t.trade_id, Decimal(t.price), Decimal(t.quantity), t.trade_time, t.is_buyer_maker)
        for t in expected
    ]
    assert trades["symbol"].unique().to_list() == ["BTCUSDT"]
    assert trades["ts_init"].unique().to_list() == [int(clock.now * 1e9)]
    assert trades["message_id"].unique(maintain_order=True).to_list() == [
        f"rest:historicalTrades:{first}",
        f"rest:historicalTrades:{first + 1000}",
        f"rest:historicalTrades:{first + 2000}",
    ]
    raw = json.loads(trades["raw"][0])
    assert raw["quoteQty"] == quote_qty(expected[0].price, expected[0].quantity)
    assert fetched_from_ids(fake) == [(first, 1000), (first + 1000, 1000), (first + 2000, 501)]
    assert weights == [25, 25, 25]
    assert fake.used_weight == 75
    assert clock.waits == []
    headers = fake.requests[0].headers
    assert headers["user-agent"] == "candleflow"
    assert "x-mbx-apikey" not in headers


def test_the_api_key_is_sent_when_given(fake: FakeBinanceRest, clock: Clock) -> None:
    with client(fake, clock, api_key="k3y") as binance:
        binance.ping()
    assert fake.requests[0].headers["x-mbx-apikey"] == "k3y"


def test_a_429_is_retried_after_its_retry_after(
    fake: FakeBinanceRest, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(429, retry_after=3)
    weights: list[int] = []
    with (
        caplog.at_level(logging.WARNING, "tasks.binance_rest"),
        client(fake, clock, before_request=weights.append) as binance,
    ):
        trades = binance.fetch_trades("BTCUSDT", FIRST, FIRST + 9)

    assert trades["trade_id"].to_list() == list(range(FIRST, FIRST + 10))
    assert clock.waits == [3.0]
    assert fetched_from_ids(fake) == [(FIRST, 10), (FIRST, 10)]
    assert weights == [25, 25]
    assert caplog.messages == [
        f"Binance answered 429 for historicalTrades BTCUSDT fromId={FIRST}; "
        "retrying in 3.0 s (attempt 2/8)"
    ]


def test_a_429_without_retry_after_backs_off(fake: FakeBinanceRest, clock: Clock) -> None:
    fake.fail_next(429)
    with client(fake, clock) as binance:
        binance.fetch_trades("BTCUSDT", FIRST, FIRST)
    assert len(clock.waits) == 1
    assert 0.25 <= clock.waits[0] <= 0.5


def test_5xx_answers_are_retried_with_growing_jittered_backoff(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    fake.fail_next(500, times=3)
    fake.fail_next(503)
    with client(fake, clock, backoff_base_s=1.0, backoff_cap_s=3.0) as binance:
        trades = binance.fetch_trades("BTCUSDT", FIRST, FIRST + 1)
    assert trades.height == 2
    assert len(fake.requests) == 5
    bounds = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)]  # base * 2**n capped at 3 s
    assert len(clock.waits) == 4
    for wait, (low, high) in zip(clock.waits, bounds, strict=True):
        assert low <= wait <= high
    assert len(set(clock.waits)) == 4  # jittered


def test_a_418_raises_banned_at_once_without_retrying(fake: FakeBinanceRest, clock: Clock) -> None:
    fake.fail_next(418, retry_after=120)
    with (
        client(fake, clock) as binance,
        pytest.raises(BinanceBanned, match=r"Retry-After 120 s\. The backfill stopped") as raised,
    ):
        binance.fetch_trades("BTCUSDT", FIRST, FIRST + 5000)
    assert f"historicalTrades BTCUSDT fromId={FIRST}" in str(raised.value)
    assert len(fake.requests) == 1
    assert clock.waits == []


def test_another_4xx_raises_with_binances_code_and_the_request(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    with client(fake, clock) as binance, pytest.raises(BinanceRejected) as raised:
        binance.fetch_trades("DOGEUSDT", 5, 10)
    message = str(raised.value)
    assert "Binance answered 400 for historicalTrades DOGEUSDT fromId=5" in message
    assert "code -1121, 'Invalid symbol.'" in message
    assert (raised.value.status, raised.value.code) == (400, -1121)
    assert len(fake.requests) == 1


def test_retries_give_up_after_max_attempts_saying_what_failed(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    fake.fail_next(502, times=10)
    with (
        client(fake, clock, max_attempts=3) as binance,
        pytest.raises(BinanceUnavailable, match="failed 3 times") as raised,
    ):
        binance.fetch_trades("BTCUSDT", FIRST, FIRST)
    assert f"historicalTrades BTCUSDT fromId={FIRST}" in str(raised.value)
    assert "last failure: Binance answered 502" in str(raised.value)
    assert len(fake.requests) == 3
    assert len(clock.waits) == 2


def test_a_refused_connection_is_retried_then_fails_clearly(clock: Clock) -> None:
    weights: list[int] = []
    with (
        BinanceRest(
            f"http://127.0.0.1:{free_port()}",
            sleep=clock.sleep,
            clock=clock,
            max_attempts=4,
            before_request=weights.append,
        ) as binance,
        pytest.raises(BinanceUnavailable, match="failed 4 times") as raised,
    ):
        binance.fetch_trades("BTCUSDT", FIRST, FIRST)
    assert "last failure: no answer (ConnectError" in str(raised.value)
    assert weights == [25] * 4
    assert len(clock.waits) == 3


def test_a_timeout_and_a_dropped_connection_are_retried(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    fake.stall_next(1.0)
    fake.drop_next()
    with client(fake, clock, timeout_s=0.2) as binance:
        trades = binance.fetch_trades("BTCUSDT", FIRST, FIRST + 2)
    assert trades["trade_id"].to_list() == [FIRST, FIRST + 1, FIRST + 2]
    assert len(fake.requests) == 3
    assert len(clock.waits) == 2


def test_used_weight_near_the_budget_waits_for_the_next_minute(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    clock.now = 1_723_161_300.0 + 42.5  # 17.5 s before a minute boundary
    fake.used_weight = 5_750
    weights: list[int] = []
    with client(fake, clock, before_request=weights.append) as binance:
        trades = binance.fetch_trades("BTCUSDT", FIRST, FIRST + 1999)
    assert trades.height == 2000
    assert weights == [25, 25]
    # The first answer reports 5775 used, within the 250 margin of 6000: wait out the minute. The
    # minute restarts the fake's count, so the second page goes straight on.
    assert clock.waits == [17.5]
    assert fake.used_weight == 25


def test_without_the_wait_the_fake_answers_429_like_binance(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    fake.used_weight = 5_990
    response = httpx.get(
        f"{fake.url}/api/v3/historicalTrades", params={"symbol": "BTCUSDT", "fromId": FIRST}
    )
    assert response.status_code == 429
    assert response.json()["code"] == -1003
    assert response.headers["Retry-After"] == "60"


def test_ids_beyond_the_latest_trade_raise_trades_missing(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    with (
        client(fake, clock) as binance,
        pytest.raises(TradesMissing, match=f"ids {LAST + 1}..{LAST + 500}") as raised,
    ):
        binance.fetch_trades("BTCUSDT", LAST - 1500, LAST + 500)
    assert fetched_from_ids(fake) == [(LAST - 1500, 1000), (LAST - 500, 1000), (LAST + 1, 500)]
    assert (raised.value.first_id, raised.value.last_id) == (LAST + 1, LAST + 500)


def test_a_hole_in_binances_answers_raises_trades_missing(clock: Clock) -> None:
    holed = [t for t in CAPTURE if not FIRST + 10 <= t.trade_id <= FIRST + 12]
    with (
        FakeBinanceRest(holed, clock=clock) as fake,
        client(fake, clock) as binance,
        pytest.raises(TradesMissing, match="3 of the ids in this span were in no") as raised,
    ):
        binance.fetch_trades("BTCUSDT", FIRST, FIRST + 1500)
    assert (raised.value.first_id, raised.value.last_id) == (FIRST + 10, FIRST + 12)


def test_the_fakes_pages_parse_like_binances_including_microsecond_times(
    fake: FakeBinanceRest,
) -> None:
    params: dict[str, str | int] = {"symbol": "BTCUSDT", "fromId": FIRST, "limit": 3}
    ms = httpx.get(f"{fake.url}/api/v3/historicalTrades", params=params)
    us = httpx.get(
        f"{fake.url}/api/v3/historicalTrades",
        params=params,
        headers={"X-MBX-TIME-UNIT": "MICROSECOND"},
    )
    assert ms.content.startswith(
        b'[{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.7526",'
        b'"time":1723161255342,"isBuyerMaker":true,"isBestMatch":true},'
    )
    a, b = rest_trades_frame("BTCUSDT", ms.content, 0), rest_trades_frame("BTCUSDT", us.content, 0)
    assert a["trade_time"].to_list() == b["trade_time"].to_list()
    assert (b["ts_event"] - a["ts_event"]).to_list() == [0, 0, 0]
    latest = httpx.get(f"{fake.url}/api/v3/historicalTrades", params={"symbol": "BTCUSDT"}).json()
    assert [t["id"] for t in latest] == list(range(LAST - 499, LAST + 1))


def test_the_fakes_agg_trades_aggregate_every_trade_once(fake: FakeBinanceRest) -> None:
    aggs = []
    from_id = 1
    while True:
        page = httpx.get(
            f"{fake.url}/api/v3/aggTrades",
            params={"symbol": "BTCUSDT", "fromId": from_id, "limit": 1000},
        ).json()
        if not page:
            break
        aggs += page
        from_id = page[-1]["a"] + 1
    assert [g["a"] for g in aggs] == list(range(1, len(aggs) + 1))
    assert len(aggs) < len(CAPTURE)
    by_id: dict[int, Trade] = {t.trade_id: t for t in CAPTURE}
    covered = []
    for g in aggs:
        members = [by_id[i] for i in range(g["f"], g["l"] + 1)]
        covered += [t.trade_id for t in members]
        assert {(t.price, t.trade_time, t.is_buyer_maker) for t in members} == {
            (g["p"], g["T"], g["m"])
        }
        assert Decimal(g["q"]) == sum(Decimal(t.quantity) for t in members)
    assert covered == [t.trade_id for t in CAPTURE]
    window = httpx.get(
        f"{fake.url}/api/v3/aggTrades",
        params={"symbol": "BTCUSDT", "startTime": CAPTURE[0].trade_time, "endTime": 1723161256000},
    ).json()
    assert window == [g for g in aggs if g["T"] <= 1723161256000]
    assert httpx.get(f"{fake.url}/api/v3/ping").json() == {}


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250)],
)
def test_depth_weighs_what_binance_documents_for_its_limit(limit: int, weight: int) -> None:
    assert depth_weight(limit) == weight


@pytest.mark.parametrize("limit", [0, 5001])
def test_a_depth_limit_outside_1_to_5000_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match=r"within 1\.\.5000"):
        depth_weight(limit)


def test_a_depth_snapshot_is_the_captures_rest_snapshot_with_prices_as_strings(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    weights: list[int] = []
    with client(fake, clock, before_request=weights.append) as binance:
        book = binance.depth_snapshot("BTCUSDT")
        top = binance.depth_snapshot("BTCUSDT", limit=5)

    assert book["lastUpdateId"] == 50093239218
    assert len(book["bids"]) == len(book["asks"]) == 1000
    assert book["bids"][0] == ["61837.63000000", "3.78826000"]
    assert book["asks"][0] == ["61837.64000000", "1.54698000"]
    assert top == {"lastUpdateId": 50093239218, "bids": book["bids"][:5], "asks": book["asks"][:5]}
    assert weights == [50, 5]
    assert fake.used_weight == 55
    assert [r.params for r in fake.requests] == [
        {"symbol": "BTCUSDT", "limit": "1000"},
        {"symbol": "BTCUSDT", "limit": "5"},
    ]


def test_depth_serves_any_captured_symbol_and_scripted_books(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    fake.set_depth("BNBUSDT", 7, [("580.10000000", "1.00000000")], [("580.20000000", "2.5")])
    with client(fake, clock) as binance:
        eth = binance.depth_snapshot("ETHUSDT", 100)
        bnb = binance.depth_snapshot("BNBUSDT", 5000)
    expected = capture_depth("ETHUSDT")
    assert expected is not None
    assert eth["lastUpdateId"] == expected.last_update_id == 35346513512
    assert eth["bids"] == [list(level) for level in expected.bids[:100]]
    assert bnb == {
        "lastUpdateId": 7,
        "bids": [["580.10000000", "1.00000000"]],
        "asks": [["580.20000000", "2.5"]],
    }
    assert fake.used_weight == 5 + 250


def test_depth_of_an_unknown_symbol_raises_with_binances_code(
    fake: FakeBinanceRest, clock: Clock
) -> None:
    with client(fake, clock) as binance, pytest.raises(BinanceRejected) as raised:
        binance.depth_snapshot("DOGEUSDT")
    assert "Binance answered 400 for depth DOGEUSDT limit=1000" in str(raised.value)
    assert raised.value.code == -1121


def test_depth_is_retried_after_a_429_like_any_request(fake: FakeBinanceRest, clock: Clock) -> None:
    fake.fail_next(429, retry_after=2)
    fake.fail_next(503)
    weights: list[int] = []
    with client(fake, clock, before_request=weights.append) as binance:
        book = binance.depth_snapshot("BTCUSDT", 500)
    assert len(book["asks"]) == 500
    assert weights == [25, 25, 25]
    assert clock.waits[0] == 2.0 and len(clock.waits) == 2


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>", "answer is not JSON"),
        (b"[]", "answer must be a JSON object"),
        (b'{"bids":[],"asks":[]}', "field 'lastUpdateId' must be an integer"),
        (b'{"lastUpdateId":1,"bids":{},"asks":[]}', "field 'bids' must be an array"),
        (b'{"lastUpdateId":1,"bids":[],"asks":[[1.5,"2"]]}', "asks[0] must be a [price, qty] pair"),
    ],
)
def test_a_malformed_depth_answer_raises_decode_error(
    fake: FakeBinanceRest, clock: Clock, body: bytes, problem: str
) -> None:
    fake.fail_next(200, body=body)
    with client(fake, clock) as binance, pytest.raises(DecodeError) as raised:
        binance.depth_snapshot("BTCUSDT")
    assert str(raised.value).startswith("depth BTCUSDT: ")
    assert problem in str(raised.value)
