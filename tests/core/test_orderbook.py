from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.orderbook import (
    BinanceBookSync,
    Book,
    DepthSnapshot,
    DepthUpdate,
    Side,
    SyncStatus,
    parse_btcm_orderbook,
    parse_depth_snapshot,
    parse_depth_update,
)

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "binance-ws"
_STREAM_PREFIX = '{"stream":"'


# --- the real captures -------------------------------------------------------------------------


@dataclass(frozen=True)
class BookTicker:
    """A ``@bookTicker`` frame: ``u`` is the order book update id it shows."""

    update_id: int
    bid: tuple[Decimal, Decimal]
    ask: tuple[Decimal, Decimal]


Message = DepthUpdate | DepthSnapshot


def _lines(path: Path) -> Iterator[str]:
    """The frame texts of a capture file; each line is ``<recv_ns> <frame text>``."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield line.rstrip("\n").partition(" ")[2]


@cache
def capture(symbol: str) -> tuple[tuple[Message, ...], tuple[BookTicker, ...]]:
    """Depth updates and the REST snapshot of ``symbol`` in receive order, and its bookTickers.

    The two files of a symbol follow each other (the second starts where the first ends); the
    snapshot is the one line of the ``_20240808`` file that is not a stream frame.
    """
    messages: list[Message] = []
    tickers: list[BookTicker] = []
    for day in ("20240808", "20240809"):
        for text in _lines(CAPTURES / f"spot_{symbol.lower()}_{day}.gz"):
            if not text.startswith(_STREAM_PREFIX):
                messages.append(parse_depth_snapshot(json.loads(text)))
            elif text.startswith(f"{_STREAM_PREFIX}{symbol.lower()}@depth"):
                messages.append(parse_depth_update(json.loads(text)["data"]))
            elif text.startswith(f"{_STREAM_PREFIX}{symbol.lower()}@bookTicker"):
                d = json.loads(text)["data"]
                pair = (Decimal(d["b"]), Decimal(d["B"])), (Decimal(d["a"]), Decimal(d["A"]))
                tickers.append(BookTicker(d["u"], *pair))
    return tuple(messages), tuple(tickers)


def feed(sync: BinanceBookSync, message: Message) -> SyncStatus:
    if isinstance(message, DepthSnapshot):
        return sync.on_snapshot(message)
    return sync.on_event(message)


def top(book: Book) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
    return next(book.bids()), next(book.asks())


def snapshot_of(book: Book, update_id: int) -> DepthSnapshot:
    """What ``GET /api/v3/depth`` would have answered when the book was at ``update_id``."""
    return DepthSnapshot(update_id, tuple(book.bids()), tuple(book.asks()))


# (applied, dropped, bookTickers compared), measured on the captures. BTC: 3 depth updates arrive
# before the snapshot, 2 are already in it and the third straddles lastUpdateId + 1; ETH: 2 arrive
# before it, both in it, and the next starts at lastUpdateId + 1. No gap in either capture.
EXPECTED = {"BTCUSDT": (6493, 2, 1072), "ETHUSDT": (6468, 2, 1056)}


@pytest.mark.parametrize("symbol", sorted(EXPECTED))
def test_the_real_capture_syncs_stays_uncrossed_and_agrees_with_book_ticker(symbol: str) -> None:
    messages, tickers = capture(symbol)
    applied, dropped, compared = EXPECTED[symbol]
    ticker_at = {t.update_id: t for t in tickers}
    sync = BinanceBookSync(symbol)
    statuses = []
    agreed = 0
    for message in messages:
        statuses.append(feed(sync, message))
        last = sync.last_update_id
        if last is not None and last in ticker_at:
            book = sync.book
            assert book is not None and not book.is_crossed
            ticker = ticker_at[last]
            assert top(book) == (ticker.bid, ticker.ask), f"update id {last}"
            agreed += 1
    first_synced = statuses.index(SyncStatus.SYNCED)
    assert set(statuses[:first_synced]) == {SyncStatus.WAITING}
    assert isinstance(messages[first_synced], DepthSnapshot)
    # Every status after the snapshot is SYNCED: no gap, and never a crossed book.
    assert set(statuses[first_synced:]) == {SyncStatus.SYNCED}
    counters = sync.counters
    assert (counters.applied, counters.dropped, counters.resyncs) == (applied, dropped, 0)
    # Only book tickers whose ``u`` ends a depth update are compared: the depth stream shows the
    # book every 100 ms, bookTicker is meant to show every change of the top. Comparing a book with
    # the last bookTicker before it would assume bookTicker never skips a change, and it does (BTC
    # 50093480539-542: the best bid left 61556.11 with no bookTicker frame; 2 such BTC books).
    assert agreed == compared


def test_a_lost_depth_update_is_found_at_the_next_one_and_a_fresh_snapshot_repairs_the_book() -> (
    None
):
    messages, _ = capture("BTCUSDT")
    original_snapshot = next(m for m in messages if isinstance(m, DepthSnapshot))
    updates = [i for i, m in enumerate(messages) if isinstance(m, DepthUpdate)]
    lost = updates[500]
    after = updates[501:506]  # the five updates after the lost one
    reference, repaired = BinanceBookSync("BTCUSDT"), BinanceBookSync("BTCUSDT")
    fresh: DepthSnapshot | None = None
    for i, message in enumerate(messages):
        feed(reference, message)
        if i == lost:
            continue
        status = feed(repaired, message)
        if i == after[0]:
            assert status is SyncStatus.GAP
            assert repaired.needs_snapshot and repaired.book is None
            # The capture's own snapshot is far older than the first buffered event.
            assert repaired.on_snapshot(original_snapshot) is SyncStatus.SNAPSHOT_TOO_OLD
        elif i in after[1:]:
            assert status is SyncStatus.WAITING and repaired.book is None
        if i == after[2]:
            reference_book = reference.book
            assert reference_book is not None and reference.last_update_id is not None
            fresh = snapshot_of(reference_book, reference.last_update_id)
        if i == after[-1]:
            assert fresh is not None
            # Buffered: after[0..4]; the snapshot holds after[0..2], after[3..4] are replayed.
            assert repaired.on_snapshot(fresh) is SyncStatus.SYNCED
            assert repaired.book == reference.book
            assert repaired.last_update_id == reference.last_update_id
    assert repaired.book == reference.book
    counters = repaired.counters
    assert (counters.resyncs, counters.snapshots_rejected, counters.buffered) == (1, 1, 0)
    # Not applied: the lost update, the one that found the gap and the two the snapshot held.
    assert counters.applied == reference.counters.applied - 4
    assert counters.dropped == reference.counters.dropped + 3


# --- hand-made sequences -----------------------------------------------------------------------


def levels(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(p), Decimal(q)) for p, q in pairs)


def depth(
    first: int,
    last: int,
    bids: Iterable[tuple[str, str]] = (),
    asks: Iterable[tuple[str, str]] = (),
    symbol: str = "BTCUSDT",
) -> DepthUpdate:
    return DepthUpdate(symbol, 1_723_161_255_208, first, last, levels(bids), levels(asks))


def snapshot(
    last_id: int,
    bids: Iterable[tuple[str, str]] = (("100", "1"),),
    asks: Iterable[tuple[str, str]] = (("101", "1"),),
) -> DepthSnapshot:
    return DepthSnapshot(last_id, levels(bids), levels(asks))


def test_events_wait_for_a_snapshot_which_drops_those_it_holds_and_applies_the_rest() -> None:
    sync = BinanceBookSync("BTCUSDT")
    assert sync.needs_snapshot and sync.book is None
    assert sync.on_event(depth(10, 12, bids=[("99", "5")])) is SyncStatus.WAITING
    assert sync.on_event(depth(13, 15, bids=[("100", "2")])) is SyncStatus.WAITING
    assert sync.on_event(depth(16, 20, asks=[("101", "0"), ("102", "3")])) is SyncStatus.WAITING
    assert sync.book is None and sync.counters.buffered == 3
    # (10, 12) is in the snapshot; (13, 15) straddles 14 + 1; (16, 20) follows it.
    assert sync.on_snapshot(snapshot(14)) is SyncStatus.SYNCED
    assert sync.book == Book(levels([("100", "2")]), levels([("102", "3")]))
    assert sync.last_update_id == 20
    c = sync.counters
    assert (c.applied, c.dropped, c.buffered, c.resyncs) == (2, 1, 0, 0)


def test_a_snapshot_older_than_the_first_buffered_event_is_refused_until_a_newer_one() -> None:
    sync = BinanceBookSync("BTCUSDT")
    sync.on_event(depth(10, 12))
    assert sync.on_snapshot(snapshot(8)) is SyncStatus.SNAPSHOT_TOO_OLD
    # One less than U would chain, but Binance's rule is "strictly less than U: get another".
    assert sync.on_snapshot(snapshot(9)) is SyncStatus.SNAPSHOT_TOO_OLD
    assert sync.needs_snapshot and sync.book is None and sync.counters.snapshots_rejected == 2
    assert sync.on_snapshot(snapshot(11)) is SyncStatus.SYNCED
    assert sync.last_update_id == 12


def test_after_sync_a_skipped_update_id_discards_the_book_until_a_new_snapshot() -> None:
    sync = BinanceBookSync("BTCUSDT")
    sync.on_snapshot(snapshot(20))
    assert sync.on_event(depth(21, 22, bids=[("100", "4")])) is SyncStatus.SYNCED
    assert sync.on_event(depth(15, 22)) is SyncStatus.SYNCED  # a repeat: ignored
    assert sync.on_event(depth(24, 25)) is SyncStatus.GAP  # 23 is missing
    assert sync.needs_snapshot and sync.book is None and sync.counters.resyncs == 1
    assert sync.on_event(depth(26, 27, asks=[("101", "7")])) is SyncStatus.WAITING
    assert sync.on_snapshot(snapshot(23)) is SyncStatus.SNAPSHOT_TOO_OLD
    assert sync.on_snapshot(snapshot(25, bids=[("100", "9")])) is SyncStatus.SYNCED
    assert sync.book == Book(levels([("100", "9")]), levels([("101", "7")]))
    c = sync.counters
    assert (c.applied, c.dropped, c.resyncs, c.snapshots_rejected) == (2, 2, 1, 1)


def test_a_gap_among_the_buffered_events_is_found_when_the_snapshot_replays_them() -> None:
    sync = BinanceBookSync("BTCUSDT")
    for first, last in ((10, 12), (13, 15), (18, 20)):
        sync.on_event(depth(first, last))
    assert sync.on_snapshot(snapshot(12)) is SyncStatus.GAP
    assert sync.needs_snapshot and sync.counters.buffered == 1
    assert sync.on_snapshot(snapshot(19)) is SyncStatus.SYNCED


def test_a_snapshot_before_any_event_must_be_bridged_by_the_first_event() -> None:
    sync = BinanceBookSync("BTCUSDT")
    assert sync.on_snapshot(snapshot(50)) is SyncStatus.SYNCED
    assert sync.on_event(depth(40, 50)) is SyncStatus.SYNCED  # already in the snapshot
    assert sync.on_event(depth(52, 53)) is SyncStatus.GAP


def test_a_book_that_comes_out_crossed_is_discarded() -> None:
    sync = BinanceBookSync("BTCUSDT")
    sync.on_snapshot(snapshot(20))
    assert sync.on_event(depth(21, 21, bids=[("101.5", "1")])) is SyncStatus.CROSSED
    assert sync.book is None and sync.counters.resyncs == 1
    crossed = snapshot(30, bids=[("102", "1")])
    assert sync.on_snapshot(crossed) is SyncStatus.CROSSED and sync.needs_snapshot
    # The crossing event waits in the buffer: the next snapshot must reach its U.
    assert sync.on_snapshot(snapshot(20)) is SyncStatus.SNAPSHOT_TOO_OLD
    assert sync.on_snapshot(snapshot(21)) is SyncStatus.SYNCED
    assert sync.book == snapshot(21).to_book()
    assert sync.counters.snapshots_rejected == 2


def test_a_newer_snapshot_replaces_a_valid_book_and_an_older_one_changes_nothing() -> None:
    sync = BinanceBookSync("BTCUSDT")
    sync.on_snapshot(snapshot(20))
    assert sync.on_snapshot(snapshot(10, bids=[("1", "1")])) is SyncStatus.SYNCED
    assert sync.book == snapshot(20).to_book()
    assert sync.on_snapshot(snapshot(30, bids=[("99", "1")])) is SyncStatus.SYNCED
    assert sync.book == snapshot(30, bids=[("99", "1")]).to_book() and sync.last_update_id == 30


def test_the_buffer_is_bounded_and_drops_the_oldest_events() -> None:
    sync = BinanceBookSync("BTCUSDT", max_buffer=2)
    for first in (10, 11, 12):
        sync.on_event(depth(first, first))
    assert (sync.counters.buffered, sync.counters.dropped) == (2, 1)
    assert sync.on_snapshot(snapshot(10)) is SyncStatus.SNAPSHOT_TOO_OLD  # 11 is the oldest now


def test_events_of_another_symbol_are_refused() -> None:
    with pytest.raises(ValueError, match="ETHUSDT"):
        BinanceBookSync("BTCUSDT").on_event(depth(1, 1, symbol="ETHUSDT"))


# --- the book ----------------------------------------------------------------------------------


def test_quantities_are_absolute_zero_removes_and_removing_an_absent_level_is_normal() -> None:
    book = Book(levels([("99", "1"), ("100", "2")]), levels([("101", "3")]))
    book.apply(Side.BID, Decimal("100"), Decimal("5"))
    book.apply(Side.BID, Decimal("99.00"), Decimal("0"))  # the same price written differently
    book.apply(Side.ASK, Decimal("150"), Decimal("0"))
    assert list(book.bids()) == [(Decimal("100"), Decimal("5"))]
    assert list(book.asks()) == [(Decimal("101"), Decimal("3"))]
    assert (book.best_bid, book.best_ask, book.is_crossed) == (Decimal(100), Decimal(101), False)
    with pytest.raises(ValueError, match="must be >= 0"):
        book.apply(Side.ASK, Decimal("101"), Decimal("-1"))


operations = st.lists(
    st.tuples(
        st.sampled_from(Side),
        st.integers(1, 40).map(lambda n: Decimal(n) / 4),
        st.sampled_from(["0", "0", "1", "2.5"]).map(Decimal),
    ),
    max_size=60,
)


@given(operations)
def test_the_book_matches_a_plain_dict_whatever_the_updates(ops: list[Any]) -> None:
    book = Book()
    model: dict[Side, dict[Decimal, Decimal]] = {Side.BID: {}, Side.ASK: {}}
    for side, price, qty in ops:
        book.apply(side, price, qty)
        if qty:
            model[side][price] = qty
        else:
            model[side].pop(price, None)
    assert list(book.bids()) == sorted(model[Side.BID].items(), reverse=True)
    assert list(book.asks()) == sorted(model[Side.ASK].items())
    assert book.best_bid == max(model[Side.BID], default=None)
    assert book.best_ask == min(model[Side.ASK], default=None)
    assert book.is_crossed == (
        bool(model[Side.BID]) and bool(model[Side.ASK]) and book.best_bid >= book.best_ask
    )
    assert book == Book(model[Side.BID].items(), model[Side.ASK].items())


def test_a_copy_does_not_follow_the_book() -> None:
    book = Book(levels([("100", "1")]), levels([("101", "1")]))
    twin = book.copy()
    book.apply(Side.ASK, Decimal("100.5"), Decimal("2"))
    assert twin == Book(levels([("100", "1")]), levels([("101", "1")])) and twin != book


# --- parsing -----------------------------------------------------------------------------------

UPDATE = {
    "e": "depthUpdate",
    "E": 1723161255408,
    "s": "BTCUSDT",
    "U": 50093239208,
    "u": 50093239224,
    "b": [["61837.63000000", "3.78826000"], ["61820.99000000", "0.00000000"]],
    "a": [["61837.64000000", "1.60520000"]],
}


def test_a_real_depth_update_parses_to_exact_decimals() -> None:
    update = parse_depth_update(UPDATE)
    assert (update.symbol, update.first_update_id, update.final_update_id) == (
        "BTCUSDT",
        50093239208,
        50093239224,
    )
    assert update.bids[1] == (Decimal("61820.99"), Decimal(0))
    assert str(update.asks[0][1]) == "1.60520000"
    snap = parse_depth_snapshot({"lastUpdateId": 7, "bids": UPDATE["b"], "asks": UPDATE["a"]})
    assert snap.last_update_id == 7 and snap.to_book().best_ask == Decimal("61837.64")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"e": "trade"}, "field 'e'"),
        ({"U": None}, "field 'U'"),
        ({"u": True}, "field 'u'"),
        ({"U": 9, "u": 8}, "field 'U' \\(9\\) must be <= field 'u'"),
        ({"b": [[61837.63, "1"]]}, "field 'b'\\[0\\] price"),
        ({"a": [["1", "1", "1"]]}, "field 'a'\\[0\\] must be"),
        ({"a": [["1", "-1"]]}, "field 'a'\\[0\\] qty"),
        ({"s": "BTC/USDT"}, "field 's'"),
    ],
)
def test_a_malformed_depth_update_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_depth_update({**UPDATE, **change})


def test_a_depth_update_without_a_field_says_which() -> None:
    with pytest.raises(ValueError, match="lacks field 'E'"):
        parse_depth_update({k: v for k, v in UPDATE.items() if k != "E"})
    with pytest.raises(ValueError, match="lacks field 'lastUpdateId'"):
        parse_depth_snapshot({"bids": [], "asks": []})


BTCM = {
    "marketId": "BTC-AUD",
    "snapshotId": 1567334110144000,
    "asks": [["14780.98", "0.025"], ["14780.98", "0.5"], ["14781.1", "1.2"]],
    "bids": [["14777.24", "0.0205"], ["14770", "2"]],
}


def test_a_btcmarkets_book_sums_the_orders_at_each_price() -> None:
    parsed = parse_btcm_orderbook(BTCM)
    assert (parsed.market_id, parsed.snapshot_id) == ("BTC-AUD", 1567334110144000)
    assert tuple(parsed.book.asks()) == levels([("14780.98", "0.525"), ("14781.1", "1.2")])
    assert tuple(parsed.book.bids()) == levels([("14777.24", "0.0205"), ("14770", "2")])
    assert parse_btcm_orderbook({**BTCM, "snapshotId": "42"}).snapshot_id == 42


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"marketId": "btc_aud"}, "field 'marketId'"),
        ({"snapshotId": -1}, "field 'snapshotId'"),
        ({"asks": [["14780.98", "0"]]}, "field 'asks'\\[0\\] must have price and amount > 0"),
        ({"bids": "none"}, "field 'bids' must be a list"),
    ],
)
def test_a_malformed_btcmarkets_book_names_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_btcm_orderbook({**BTCM, **change})
