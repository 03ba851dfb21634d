"""The BTCMarkets REST client against the loopback fake over real HTTP, and the fake's books."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tasks.btcmarkets_rest import (
    BtcMarketsRejected,
    BtcMarketsRest,
    BtcMarketsUnavailable,
    OrderBookSnapshot,
    UnknownMarket,
)
from tasks.errors import DecodeError
from tests.conftest import free_port
from tests.fakes.btcmarkets_rest import MARKETS, FakeBtcMarketsRest

NOW = 1_763_712_000.0  # 2025-11-21T08:00:00Z
THIN_BIDS = [("95000.5", "0.10"), ("95000", "2"), ("95000", "0.00012345"), ("94990.01", "1.5")]
THIN_ASKS = [("95010", "0.01000000"), ("95011.99", "3")]


class Clock:
    """Shared by the client and the fake: ``sleep`` records each wait and moves time on."""

    def __init__(self, now: float = NOW) -> None:
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
def fake(clock: Clock) -> Iterator[FakeBtcMarketsRest]:
    with FakeBtcMarketsRest(clock=clock) as server:
        yield server


def client(fake: FakeBtcMarketsRest, clock: Clock, **options: Any) -> BtcMarketsRest:
    return BtcMarketsRest(fake.url, sleep=clock.sleep, clock=clock, rng=random.Random(7), **options)


def book_of(
    fake: FakeBtcMarketsRest, clock: Clock, market: str, level: int = 2
) -> OrderBookSnapshot:
    with client(fake, clock) as btcm:
        return btcm.orderbook(market, level)


def test_a_scripted_book_parses_to_exact_decimals_summed_per_price(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    fake.set_book("BTC-AUD", THIN_BIDS, THIN_ASKS, snapshot_id=1_763_712_000_123_456)
    weights: list[int] = []
    with client(fake, clock, before_request=weights.append) as btcm:
        book = btcm.orderbook("BTC-AUD")

    assert book == OrderBookSnapshot(
        market_id="BTC-AUD",
        snapshot_id=1_763_712_000_123_456,
        bids=(
            (Decimal("95000.5"), Decimal("0.10")),
            (Decimal("95000"), Decimal("2.00012345")),  # the two orders at 95000
            (Decimal("94990.01"), Decimal("1.5")),
        ),
        asks=((Decimal("95010"), Decimal("0.01000000")), (Decimal("95011.99"), Decimal("3"))),
        ts_init=int(NOW * 1e9),
    )
    assert str(book.bids[0][1]) == "0.10"  # the text as sent, not a float's
    assert book.ts_event == 1_763_712_000_123_456_000
    assert book.to_book().best_bid == Decimal("95000.5")
    assert weights == [1]
    request = fake.requests[0]
    assert (request.path, request.params) == ("/v3/markets/BTC-AUD/orderbook", {"level": "2"})
    assert request.headers["user-agent"] == "candleflow"


def test_markets_lists_every_market_id(fake: FakeBtcMarketsRest, clock: Clock) -> None:
    with client(fake, clock) as btcm:
        ids = btcm.markets()
    assert ids == [m.market_id for m in MARKETS]
    assert {"BTC-AUD", "ETH-AUD", "XRP-AUD", "SOL-AUD", "LTC-AUD", "USDT-AUD"} <= set(ids)
    assert fake.requests[0].path == "/v3/markets"


@pytest.mark.parametrize("spec", MARKETS, ids=lambda s: s.market_id)
def test_the_fakes_books_are_realistic(fake: FakeBtcMarketsRest, clock: Clock, spec: Any) -> None:
    book = book_of(fake, clock, spec.market_id)
    best_bid, best_ask = book.bids[0][0], book.asks[0][0]
    mid = (best_bid + best_ask) / 2
    assert abs(mid / Decimal(spec.mid) - 1) < Decimal("0.01")  # near the market's AUD price
    assert 0 < best_ask - best_bid < mid * Decimal("0.005")  # uncrossed, a spread of a few bps
    for side in (book.bids, book.asks):
        prices = [p for p, _ in side]
        assert len(prices) == 50  # 50 prices (the fake lists one to three orders at each)
        assert all(p == p.quantize(spec.tick) for p in prices)  # on the tick
        assert all(
            Decimal(spec.min_order_amount) <= a == a.quantize(Decimal("1e-8")) for _, a in side
        )
        near = sum(p * a for p, a in side[: len(side) // 2])
        far = sum(p * a for p, a in side[len(side) // 2 :])
        assert far > near  # more size away from the top
        assert near + far > 10_000  # enough to fill A$10,000 on either side
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    raw = httpx.get(f"{fake.url}/v3/markets/{spec.market_id}/orderbook", params={"level": 2})
    assert len(raw.json()["bids"]) > 50  # as BTCMarkets, the answer lists orders, not prices


def test_level_1_is_the_best_50_orders_of_the_full_book(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    full = fake.book("ETH-AUD", level=2)
    fake.set_book("ETH-AUD", full["bids"], full["asks"])  # pinned: both requests see it
    raw = httpx.get(f"{fake.url}/v3/markets/ETH-AUD/orderbook").json()  # level 1 by default
    assert len(raw["bids"]) == len(raw["asks"]) == 50
    assert (raw["bids"], raw["asks"]) == (full["bids"][:50], full["asks"][:50])
    top = book_of(fake, clock, "ETH-AUD", level=1)
    whole = book_of(fake, clock, "ETH-AUD", level=2)
    assert fake.requests[1].params == {"level": "1"}
    for part, side in ((top.bids, whole.bids), (top.asks, whole.asks)):
        n = len(part)
        assert n < len(side) == 50
        assert part[:-1] == side[: n - 1]  # the best prices, whole
        assert part[-1][0] == side[n - 1][0] and part[-1][1] <= side[n - 1][1]  # maybe cut short


def test_the_book_moves_between_requests_and_is_the_same_for_the_same_seed(clock: Clock) -> None:
    with FakeBtcMarketsRest(clock=clock) as one, FakeBtcMarketsRest(clock=clock) as two:
        first = book_of(one, clock, "BTC-AUD")
        clock.now += 60
        second = book_of(one, clock, "BTC-AUD")
        assert second.snapshot_id > first.snapshot_id
        assert second.bids != first.bids and second.asks != first.asks
        assert second.bids[0][0] != first.bids[0][0]  # the mid walked
        assert abs(second.bids[0][0] / first.bids[0][0] - 1) < Decimal("0.002")  # a small step

        two.advance(1)
        assert book_of(two, clock, "BTC-AUD").bids == second.bids  # deterministic per market


def test_with_step_s_the_book_moves_with_the_clock_and_repeats_within_a_step(
    clock: Clock,
) -> None:
    with FakeBtcMarketsRest(clock=clock, step_s=5.0) as fake:
        first = book_of(fake, clock, "SOL-AUD")
        clock.now += 2
        again = book_of(fake, clock, "SOL-AUD")
        clock.now += 3
        moved = book_of(fake, clock, "SOL-AUD")
    assert again.snapshot_id == first.snapshot_id and again.bids == first.bids
    assert moved.snapshot_id > first.snapshot_id and moved.bids != first.bids


def test_a_429_is_retried_after_its_retry_after(
    fake: FakeBtcMarketsRest, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set_book("BTC-AUD", THIN_BIDS, THIN_ASKS)
    fake.fail_next(429, retry_after=3)
    weights: list[int] = []
    with (
        caplog.at_level(logging.WARNING, "tasks.btcmarkets_rest"),
        client(fake, clock, before_request=weights.append) as btcm,
    ):
        book = btcm.orderbook("BTC-AUD")
    assert book.bids[0] == (Decimal("95000.5"), Decimal("0.10"))
    assert clock.waits == [3.0]
    assert weights == [1, 1]
    assert caplog.messages == [
        "BTCMarkets answered 429 for orderbook BTC-AUD level=2; retrying in 3.0 s (attempt 2/6)"
    ]


def test_a_429_without_retry_after_backs_off(fake: FakeBtcMarketsRest, clock: Clock) -> None:
    fake.fail_next(429)
    book_of(fake, clock, "XRP-AUD")
    assert len(clock.waits) == 1
    assert 0.25 <= clock.waits[0] <= 0.5


def test_past_the_window_limit_the_fake_answers_429_and_the_client_waits_the_window_out(
    clock: Clock,
) -> None:
    clock.now = NOW + 7.5  # 2.5 s before the 10-second window ends
    with FakeBtcMarketsRest(clock=clock, limits={"orderbook": 2}) as fake:
        for _ in range(3):
            book_of(fake, clock, "LTC-AUD")
        refused = httpx.get(f"{fake.url}/v3/markets/LTC-AUD/orderbook")
    assert clock.waits == [3.0]
    assert len(fake.requests) == 5  # 2 answered, 1 refused, its retry in the next window, 1 more
    assert refused.status_code == 200
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_5xx_answers_are_retried_with_growing_jittered_backoff(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    fake.fail_next(500, times=2)
    fake.fail_next(502)  # Cloudflare's HTML page
    fake.fail_next(503)
    with client(fake, clock, backoff_base_s=1.0, backoff_cap_s=3.0) as btcm:
        book = btcm.orderbook("ETH-AUD")
    assert book.market_id == "ETH-AUD"
    assert len(fake.requests) == 5
    bounds = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0), (1.5, 3.0)]  # base * 2**n capped at 3 s
    for wait, (low, high) in zip(clock.waits, bounds, strict=True):
        assert low <= wait <= high
    assert len(set(clock.waits)) == 4  # jittered


def test_retries_give_up_after_max_attempts_saying_what_failed(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    fake.fail_next(502, times=10)
    with (
        client(fake, clock, max_attempts=3) as btcm,
        pytest.raises(BtcMarketsUnavailable, match="failed 3 times") as raised,
    ):
        btcm.orderbook("BTC-AUD")
    assert "BTCMarkets orderbook BTC-AUD level=2" in str(raised.value)
    assert "last failure: BTCMarkets answered 502" in str(raised.value)
    assert len(fake.requests) == 3 and len(clock.waits) == 2


def test_a_refused_connection_a_timeout_and_a_dropped_connection_are_retried(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    with (
        BtcMarketsRest(
            f"http://127.0.0.1:{free_port()}", sleep=clock.sleep, clock=clock, max_attempts=2
        ) as btcm,
        pytest.raises(BtcMarketsUnavailable, match=r"last failure: no answer \(ConnectError"),
    ):
        btcm.markets()
    fake.stall_next(1.0)
    fake.drop_next()
    with client(fake, clock, timeout_s=0.2) as btcm:
        assert btcm.markets()[0] == "BTC-AUD"
    assert len(fake.requests) == 3


def test_an_unknown_market_raises_at_once_naming_it_and_btcmarkets_code(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    with client(fake, clock) as btcm, pytest.raises(UnknownMarket) as raised:
        btcm.orderbook("NOPE-AUD")
    message = str(raised.value)
    assert "orderbook NOPE-AUD level=2" in message
    assert "404 MarketNotFound, 'market not found'" in message
    assert (raised.value.status, raised.value.code) == (404, "MarketNotFound")
    assert len(fake.requests) == 1 and clock.waits == []


def test_another_4xx_raises_with_btcmarkets_code_and_message(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    fake.fail_next(
        400, body=b'{"code":"InvalidOrderbookLevel","message":"invalid orderbook level"}'
    )
    with client(fake, clock) as btcm, pytest.raises(BtcMarketsRejected) as raised:
        btcm.orderbook("BTC-AUD", level=1)
    assert not isinstance(raised.value, UnknownMarket)
    assert "BTCMarkets answered 400 for orderbook BTC-AUD level=1" in str(raised.value)
    assert "code InvalidOrderbookLevel, 'invalid orderbook level'" in str(raised.value)
    assert len(fake.requests) == 1


def test_bad_arguments_are_refused_before_any_request(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    with client(fake, clock) as btcm:
        with pytest.raises(ValueError, match="InvalidOrderbookLevel"):
            btcm.orderbook("BTC-AUD", level=3)
        with pytest.raises(ValueError, match="market id like BTC-AUD"):
            btcm.orderbook("BTC/AUD")
    assert fake.requests == []
    refused = httpx.get(f"{fake.url}/v3/markets/BTC-AUD/orderbook", params={"level": 3})
    assert refused.status_code == 400
    assert refused.json() == {"code": "InvalidOrderbookLevel", "message": "invalid orderbook level"}


BOOK = '"marketId":"BTC-AUD","snapshotId":1763712000123456'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "answer is not JSON"),
        ("[]", "must be a JSON object, got []"),
        (
            '{"marketId":"ETH-AUD","snapshotId":1,"bids":[],"asks":[]}',
            "'marketId' must be 'BTC-AUD'",
        ),
        ('{"marketId":"btc-aud","snapshotId":1,"bids":[],"asks":[]}', "'marketId' must be like"),
        ('{"marketId":"BTC-AUD","snapshotId":"x","bids":[],"asks":[]}', "'snapshotId' must be an"),
        ("{" + BOOK + ',"asks":[]}', "lacks field 'bids'"),
        ("{" + BOOK + ',"bids":{},"asks":[]}', "field 'bids' must be a list of [price, quantity]"),
        ("{" + BOOK + ',"bids":[["1"]],"asks":[]}', "field 'bids'[0] must be [price, quantity]"),
        (
            "{" + BOOK + ',"bids":[["abc","1"]],"asks":[]}',
            "'bids'[0] price must be a decimal string",
        ),
        ("{" + BOOK + ',"bids":[[95000.5,"1"]],"asks":[]}', "'bids'[0] price must be a decimal"),
        ("{" + BOOK + ',"bids":[["-1","1"]],"asks":[]}', "'bids'[0] price must be a decimal"),
        (
            "{" + BOOK + ',"bids":[],"asks":[["95000","0"]]}',
            "'asks'[0] must have price and amount > 0",
        ),
        (
            "{" + BOOK + ',"bids":[["95010","1"]],"asks":[["95010","1"]]}',
            "the book is crossed: best bid 95010 >= best ask 95010",
        ),
    ],
)
def test_a_malformed_book_raises_decode_error_naming_market_and_field(
    fake: FakeBtcMarketsRest, clock: Clock, body: str, problem: str
) -> None:
    fake.answer_next(body.encode())
    with client(fake, clock) as btcm, pytest.raises(DecodeError) as raised:
        btcm.orderbook("BTC-AUD")
    assert str(raised.value).startswith("BTCMarkets orderbook BTC-AUD: ")
    assert problem in str(raised.value)


def test_an_empty_book_is_valid(fake: FakeBtcMarketsRest, clock: Clock) -> None:
    """An offline market answers 200 with both sides empty."""
    fake.set_book("USDC-AUD", [], [], snapshot_id=1_750_727_357_660_000)
    book = book_of(fake, clock, "USDC-AUD")
    assert (book.bids, book.asks, book.snapshot_id) == ((), (), 1_750_727_357_660_000)


def test_a_malformed_market_list_raises_decode_error(
    fake: FakeBtcMarketsRest, clock: Clock
) -> None:
    fake.answer_next(b'[{"marketId":"BTC-AUD"},{"id":"ETH-AUD"}]')
    with client(fake, clock) as btcm, pytest.raises(DecodeError, match="element 1 must be"):
        btcm.markets()


def test_the_fake_answers_unknown_paths_like_btcmarkets(fake: FakeBtcMarketsRest) -> None:
    response = httpx.get(f"{fake.url}/v3/nope")
    assert (response.status_code, response.json()) == (
        404,
        {"code": "NotFound", "message": "Not Found"},
    )
    listing = httpx.get(f"{fake.url}/v3/markets").json()[0]
    assert listing == {
        "marketId": "BTC-AUD",
        "baseAssetName": "BTC",
        "quoteAssetName": "AUD",
        "minOrderAmount": "0.00001",
        "maxOrderAmount": "1000000",
        "amountDecimals": "8",
        "priceDecimals": "2",
        "status": "Online",
    }
