"""Local L2 order books: Binance's diff-depth stream kept in sync, and BTCMarkets' REST book.

Binance's ``<symbol>@depth@100ms`` sends absolute quantities per price (qty 0 removes the level)::

    {"e":"depthUpdate","E":1723161255408,"s":"BTCUSDT","U":50093239208,"u":50093239224,
     "b":[["61837.63000000","3.78826000"],["61820.99000000","0.00000000"]],
     "a":[["61837.64000000","1.60520000"]]}

and ``GET /api/v3/depth?symbol=BTCUSDT&limit=1000`` a snapshot,
``{"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...],"asks":[...]}``.

``BinanceBookSync`` follows Binance spot's "How to manage a local order book correctly"
(binance/binance-spot-api-docs ``web-socket-streams.md``, published at
https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams; the current text is
quoted in https://dev.binance.vision/t/32466 and that repository's PR #383): buffer the events, noting
the ``U`` of the first; get a snapshot; if its ``lastUpdateId`` is strictly less than that ``U``, get
another; drop buffered events with ``u <= lastUpdateId``; start from the snapshot, then per event:
``u <=`` the book's id -> ignore; ``U >`` the book's id + 1 -> discard the book and restart;
otherwise set each level and take ``u`` as the book's id. So the first applied event has
``U <= lastUpdateId + 1 <= u`` and every later one ``U == previous u + 1``. Beyond the documented
procedure a book that comes out crossed is discarded too (Binance's never is, so ours is wrong).
A discarded book is never shown: ``book`` is None until a new snapshot.

BTCMarkets v3 ``GET /v3/markets/{marketId}/orderbook`` answers (values illustrative)
``{"marketId":"BTC-AUD","snapshotId":1567334110144000,"asks":[["14780.98","0.025"],...],
"bids":[["14777.24","0.0205"],...]}``. Shape from BTCMarkets' own SDK
(BTCMarkets/btcmarkets-node-sdk ``src/types/Markets.ts``: ``IOrderbook {marketId, snapshotId, asks,
bids}``, ``[price, amount]`` strings) and a recorded probe of the live API
(nemanull/arbitrage-observatory ``docs/profiles/btcmarkets/rest.md``, 2026-09): ``level=1`` (the
default) lists the best 50 *orders* per side, ``level=2`` all of them; bids descending, asks
ascending; one entry per order, so a price may repeat (summed here); ``snapshotId`` is a number (the
SDK types it as a string, also accepted).
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext
from typing import Any

Level = tuple[Decimal, Decimal]  # (price, quantity)
Levels = tuple[Level, ...]


class Side(enum.Enum):
    BID = "bid"
    ASK = "ask"


class Book:
    """Quantity per price on each side, sorted; changed only through ``apply``.

    ``apply`` has Binance's semantics: the quantity is absolute, 0 removes the level, and removing an
    absent level does nothing. Equal prices written differently (``"1.50"``, ``"1.5"``) are one level.
    """

    __slots__ = ("_prices", "_qty")

    def __init__(self, bids: Iterable[Level] = (), asks: Iterable[Level] = ()) -> None:
        self._qty: dict[Side, dict[Decimal, Decimal]] = {Side.BID: {}, Side.ASK: {}}
        self._prices: dict[Side, list[Decimal]] = {Side.BID: [], Side.ASK: []}  # ascending
        for price, qty in bids:
            self.apply(Side.BID, price, qty)
        for price, qty in asks:
            self.apply(Side.ASK, price, qty)

    def apply(self, side: Side, price: Decimal, qty: Decimal) -> None:
        if not (price.is_finite() and price > 0):
            raise ValueError(f"a {side.value} price must be a decimal > 0, got {price}")
        if not (qty.is_finite() and qty >= 0):
            raise ValueError(f"the quantity at {side.value} {price} must be >= 0, got {qty}")
        levels, prices = self._qty[side], self._prices[side]
        if qty == 0:
            if levels.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        else:
            if price not in levels:
                insort(prices, price)
            levels[price] = qty

    def bids(self) -> Iterator[Level]:
        """(price, quantity), best (highest) first."""
        qty = self._qty[Side.BID]
        return ((p, qty[p]) for p in reversed(self._prices[Side.BID]))

    def asks(self) -> Iterator[Level]:
        """(price, quantity), best (lowest) first."""
        qty = self._qty[Side.ASK]
        return ((p, qty[p]) for p in self._prices[Side.ASK])

    @property
    def best_bid(self) -> Decimal | None:
        prices = self._prices[Side.BID]
        return prices[-1] if prices else None

    @property
    def best_ask(self) -> Decimal | None:
        prices = self._prices[Side.ASK]
        return prices[0] if prices else None

    def depth(self, side: Side) -> int:
        """Number of price levels on ``side``."""
        return len(self._prices[side])

    @property
    def is_crossed(self) -> bool:
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask

    def copy(self) -> Book:
        twin = Book()
        for side in Side:
            twin._qty[side] = dict(self._qty[side])
            twin._prices[side] = list(self._prices[side])
        return twin

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Book) and self._qty == other._qty

    __hash__ = None  # type: ignore[assignment]  # mutable: equal books may change apart

    def __repr__(self) -> str:
        bids, asks = self.depth(Side.BID), self.depth(Side.ASK)
        return f"Book({bids} bids from {self.best_bid}, {asks} asks from {self.best_ask})"


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """One Binance ``depthUpdate``: update ids ``first_update_id`` (U) .. ``final_update_id`` (u)."""

    symbol: str
    event_time: int
    first_update_id: int
    final_update_id: int
    bids: Levels
    asks: Levels


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A Binance REST depth snapshot: the book as of update id ``last_update_id``."""

    last_update_id: int
    bids: Levels
    asks: Levels

    def to_book(self) -> Book:
        return Book(self.bids, self.asks)


_DECIMAL_TEXT = re.compile(r"[0-9]{1,40}(\.[0-9]{1,40})?")


def _is_decimal_text(value: object) -> bool:
    return isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value) is not None


def _field(data: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {data!r:.200}")
    if key not in data:
        raise ValueError(f"{what} lacks field {key!r}")
    return data[key]


def _integer(data: Mapping[str, Any], key: str, what: str) -> int:
    value = _field(data, key, what)
    # bool is an int in Python, but true is no update id in JSON.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} field {key!r} must be an integer >= 0, got {value!r}")
    return value


def _levels(data: Mapping[str, Any], key: str, what: str, widths: tuple[int, ...] = (2,)) -> Levels:
    value = _field(data, key, what)
    if not isinstance(value, list):
        raise ValueError(f"{what} field {key!r} must be a list of [price, quantity], got {value!r}")
    levels = []
    for i, entry in enumerate(value):
        if not isinstance(entry, list | tuple) or len(entry) not in widths:
            raise ValueError(f"{what} field {key!r}[{i}] must be [price, quantity], got {entry!r}")
        price, qty = entry[0], entry[1]
        if not (_is_decimal_text(price) and _is_decimal_text(qty)):
            part, text = ("price", price) if not _is_decimal_text(price) else ("qty", qty)
            raise ValueError(
                f'{what} field {key!r}[{i}] {part} must be a decimal string like "61837.63", '
                f"got {text!r}"
            )
        levels.append((Decimal(price), Decimal(qty)))
    return tuple(levels)


def parse_depth_update(data: Mapping[str, Any]) -> DepthUpdate:
    """A ``depthUpdate`` payload (the ``data`` of the combined stream; see the module docstring)."""
    what = "depthUpdate"
    if _field(data, "e", what) != "depthUpdate":
        raise ValueError(f"{what} field 'e' must be 'depthUpdate', got {data['e']!r}")
    symbol = _field(data, "s", what)
    if not isinstance(symbol, str) or not symbol.isalnum():
        raise ValueError(f"{what} field 's' must be a symbol like 'BTCUSDT', got {symbol!r}")
    first, last = _integer(data, "U", what), _integer(data, "u", what)
    if first > last:
        raise ValueError(f"{what} {symbol}: field 'U' ({first}) must be <= field 'u' ({last})")
    return DepthUpdate(
        symbol,
        _integer(data, "E", what),
        first,
        last,
        _levels(data, "b", what),
        _levels(data, "a", what),
    )


def parse_depth_snapshot(data: Mapping[str, Any]) -> DepthSnapshot:
    """A ``GET /api/v3/depth`` answer (see the module docstring)."""
    what = "depth snapshot"
    return DepthSnapshot(
        _integer(data, "lastUpdateId", what),
        _levels(data, "bids", what),
        _levels(data, "asks", what),
    )


class SyncStatus(enum.Enum):
    """What an event or a snapshot did to a ``BinanceBookSync``.

    SYNCED: the book is valid as of ``last_update_id``. WAITING: no valid book, the event is
    buffered until a snapshot. SNAPSHOT_TOO_OLD: its lastUpdateId is below the first buffered U,
    get another. GAP: an event skipped update ids, the book is discarded until a new snapshot.
    CROSSED: the book came out crossed and is discarded (or a crossed snapshot was refused).
    """

    SYNCED = "synced"
    WAITING = "waiting"
    SNAPSHOT_TOO_OLD = "snapshot_too_old"
    GAP = "gap"
    CROSSED = "crossed"


@dataclass(frozen=True, slots=True)
class SyncCounters:
    applied: int = 0  # events applied to a book
    dropped: int = 0  # events ignored as already in the book (u <= its id) or buffer overflow
    resyncs: int = 0  # books discarded after a gap or a crossed book
    snapshots_rejected: int = 0  # snapshots older than the first buffered event, or crossed
    buffered: int = 0  # events waiting for a snapshot now


class BinanceBookSync:
    """Binance's documented local-book procedure for one symbol (see the module docstring).

    Feed it every ``depthUpdate`` of the symbol in order and a snapshot whenever ``needs_snapshot``;
    it never does I/O itself. While no valid book exists it buffers up to ``max_buffer`` events
    (the oldest are dropped beyond that, which only makes older snapshots unusable).
    """

    def __init__(self, symbol: str, *, max_buffer: int = 10_000) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be >= 1, got {max_buffer}")
        self.symbol = symbol
        self._max_buffer = max_buffer
        self._book: Book | None = None
        self._last_id = -1
        self._buffer: deque[DepthUpdate] = deque()
        self._applied = self._dropped = self._resyncs = self._rejected = 0

    @property
    def book(self) -> Book | None:
        """A copy of the valid book, or None while a snapshot is needed."""
        return None if self._book is None else self._book.copy()

    @property
    def last_update_id(self) -> int | None:
        return None if self._book is None else self._last_id

    @property
    def needs_snapshot(self) -> bool:
        return self._book is None

    @property
    def counters(self) -> SyncCounters:
        return SyncCounters(
            self._applied, self._dropped, self._resyncs, self._rejected, len(self._buffer)
        )

    def on_event(self, event: DepthUpdate) -> SyncStatus:
        if event.symbol != self.symbol:
            raise ValueError(f"a depthUpdate of {event.symbol} sent to the {self.symbol} book")
        if self._book is None:
            self._buffer_event(event)
            return SyncStatus.WAITING
        if event.final_update_id <= self._last_id:
            self._dropped += 1
            return SyncStatus.SYNCED
        if event.first_update_id > self._last_id + 1:
            return self._restart(event, SyncStatus.GAP)
        for price, qty in event.bids:
            self._book.apply(Side.BID, price, qty)
        for price, qty in event.asks:
            self._book.apply(Side.ASK, price, qty)
        self._last_id = event.final_update_id
        self._applied += 1
        if self._book.is_crossed:
            return self._restart(event, SyncStatus.CROSSED)
        return SyncStatus.SYNCED

    def on_snapshot(self, snapshot: DepthSnapshot) -> SyncStatus:
        """Start from ``snapshot`` if it reaches the first buffered event, then replay the buffer.

        While a book is valid an older snapshot is ignored and a newer one replaces the book; a
        crossed snapshot is refused (``CROSSED``) and changes nothing.
        """
        if self._book is not None and snapshot.last_update_id <= self._last_id:
            return SyncStatus.SYNCED
        if self._buffer and snapshot.last_update_id < self._buffer[0].first_update_id:
            self._rejected += 1
            return SyncStatus.SNAPSHOT_TOO_OLD
        book = snapshot.to_book()
        if book.is_crossed:
            self._rejected += 1
            return SyncStatus.CROSSED
        self._book, self._last_id = book, snapshot.last_update_id
        pending = list(self._buffer)
        self._buffer.clear()
        outcome = SyncStatus.SYNCED
        for event in pending:
            status = self.on_event(event)
            if status in (SyncStatus.GAP, SyncStatus.CROSSED):
                outcome = status
        return SyncStatus.SYNCED if self._book is not None else outcome

    def _restart(self, event: DepthUpdate, status: SyncStatus) -> SyncStatus:
        """Discard the book; ``event`` is the first one a new snapshot must bridge to."""
        self._book = None
        self._resyncs += 1
        self._buffer.clear()
        self._buffer.append(event)
        return status

    def _buffer_event(self, event: DepthUpdate) -> None:
        if len(self._buffer) >= self._max_buffer:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append(event)


@dataclass(frozen=True, slots=True)
class BtcmOrderBook:
    """A BTCMarkets v3 order book; ``book`` is a fresh ``Book`` the caller owns."""

    market_id: str
    snapshot_id: int
    book: Book


_BTCM_MARKET = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}")


def parse_btcm_orderbook(data: Mapping[str, Any]) -> BtcmOrderBook:
    """``GET /v3/markets/{marketId}/orderbook`` (see the module docstring); orders at one price sum."""
    what = "BTCMarkets orderbook"
    market = _field(data, "marketId", what)
    if not isinstance(market, str) or not _BTCM_MARKET.fullmatch(market):
        raise ValueError(f"{what} field 'marketId' must be like 'BTC-AUD', got {market!r}")
    raw_id = _field(data, "snapshotId", what)
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, int) or raw_id < 0:
        raise ValueError(f"{what} field 'snapshotId' must be an integer >= 0, got {raw_id!r}")
    sides: list[dict[Decimal, Decimal]] = []
    with localcontext() as exact:  # sums of order amounts never round: an overflow raises
        exact.prec, exact.traps[Inexact] = 76, True
        for key in ("bids", "asks"):
            summed: dict[Decimal, Decimal] = {}
            # An old level=3 entry carried a third element (the order count), not needed here.
            for i, (price, amount) in enumerate(_levels(data, key, what, widths=(2, 3))):
                if amount <= 0 or price <= 0:
                    raise ValueError(f"{what} field {key!r}[{i}] must have price and amount > 0")
                summed[price] = summed.get(price, Decimal(0)) + amount
            sides.append(summed)
    return BtcmOrderBook(market, raw_id, Book(sides[0].items(), sides[1].items()))
