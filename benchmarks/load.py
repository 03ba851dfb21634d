"""Synthetic Binance ``@trade`` load: combined-stream frames in the exact wire format, deterministic.

A frame is what the websocket delivers and what ``producer.parse.parse_frame`` reads::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
     "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

Trade ids are consecutive per symbol, prices random-walk on the symbol's tick and print with 8 decimals,
quantities are lot multiples, trade times advance by exponential gaps (a Poisson stream of ``rate``
trades per second over both symbols) and the event time trails the trade time by a few milliseconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, replace

# The paced source wakes up this often and emits every trade due by then.
_PACE_TICK_S = 0.005
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Market:
    """One symbol's synthetic market: share of the trades, first id, start price and tick/lot sizes."""

    symbol: str
    share: float
    first_id: int
    start_ticks: int  # price in ticks
    tick_places: int  # decimal places of one tick (2: 0.01)
    lot_places: int  # decimal places of one lot (5: 0.00001)
    mean_lots: int  # mean quantity, in lots


MARKETS = (
    Market("BTCUSDT", 0.6, 3_735_683_259, 6_183_763, 2, 5, 2_000),
    Market("ETHUSDT", 0.4, 1_510_244_117, 265_781, 2, 4, 5_000),
)


@dataclass(frozen=True, slots=True)
class Emitted:
    """A trade a source handed out: enough to find it in DynamoDB and to time it."""

    symbol: str
    trade_id: int
    trade_time_ms: int


def _decimal(units: int, places: int) -> str:
    """``units`` of ``10**-places`` as Binance prints it: always 8 decimals."""
    whole, frac = divmod(units, 10**places)
    return f"{whole}.{frac:0{places}d}{'0' * (8 - places)}"


class TradeFactory:
    """Builds frames market by market: consecutive ids, random-walk prices, realistic sizes."""

    def __init__(self, seed: int, markets: Sequence[Market] = MARKETS) -> None:
        self._rnd = random.Random(seed)
        self._markets = list(markets)
        self._weights = [m.share for m in markets]
        self._next_id = {m.symbol: m.first_id for m in markets}
        self._ticks = {m.symbol: m.start_ticks for m in markets}

    def frame(self, trade_time_ms: int) -> tuple[str, Emitted]:
        """One frame of a trade at ``trade_time_ms`` on a market picked by share."""
        line, emitted = self.line(trade_time_ms)
        return f'{{"stream":"{emitted.symbol.lower()}@trade","data":{line}}}', emitted

    def line(self, trade_time_ms: int) -> tuple[str, Emitted]:
        """The trade event of a frame (its ``data``, a line of an SQS body) on a market picked by share."""
        rnd = self._rnd
        market = rnd.choices(self._markets, self._weights)[0]
        symbol = market.symbol
        trade_id = self._next_id[symbol]
        self._next_id[symbol] = trade_id + 1
        ticks = max(1, self._ticks[symbol] + rnd.choice((-1, 0, 0, 1)))
        self._ticks[symbol] = ticks
        lots = max(1, int(rnd.expovariate(1 / market.mean_lots)))
        price = _decimal(ticks, market.tick_places)
        quantity = _decimal(lots, market.lot_places)
        event_ms = trade_time_ms + rnd.randint(0, 3)
        maker = "true" if rnd.random() < 0.5 else "false"
        text = (
            f'{{"e":"trade","E":{event_ms},"s":"{symbol}","t":{trade_id},"p":"{price}",'
            f'"q":"{quantity}","T":{trade_time_ms},"m":{maker},"M":true}}'
        )
        return text, Emitted(symbol, trade_id, trade_time_ms)


def history(count: int, start_ms: int, rate: float, seed: int) -> list[str]:
    """``count`` frames from ``start_ms`` on, ``rate`` trades per second of trade time on average."""
    factory = TradeFactory(seed)
    gaps = random.Random(seed + 1)
    mean_gap_ms = 1000.0 / rate
    at = float(start_ms)
    frames: list[str] = []
    for _ in range(count):
        frames.append(factory.frame(int(at))[0])
        at += gaps.expovariate(1.0 / mean_gap_ms)
    return frames


def day(count: int, day_start_ms: int, seed: int, market: Market = MARKETS[0]) -> list[str]:
    """``count`` trade lines (``data`` objects) of one market over the day from ``day_start_ms``.

    Ids are consecutive; trade times are uniform over the day and sorted, which is a Poisson stream
    given its count, and never leave the day (``history``'s exponential gaps could overshoot it).
    """
    factory = TradeFactory(seed, [replace(market, share=1.0)])
    times = random.Random(seed + 1)
    moments = sorted(times.randrange(DAY_MS) for _ in range(count))
    return [factory.line(day_start_ms + t)[0] for t in moments]


class PacedSource:
    """A producer source emitting ``rate`` trades per second for ``seconds``, timed at the wall clock.

    Every emitted trade is appended to ``emitted`` (safe to read from another thread) so a poller can
    time when it becomes visible downstream.
    """

    def __init__(
        self,
        rate: float,
        seconds: float,
        seed: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._rate = rate
        self._seconds = seconds
        self._factory = TradeFactory(seed)
        self._clock = clock
        self._wall_ms = wall_ms
        self._stopping = False
        self.emitted: list[Emitted] = []
        self.description = f"{rate:g} synthetic trades/s for {seconds:g} s"

    def stop(self) -> None:
        self._stopping = True

    async def frames(self) -> AsyncGenerator[str, None]:
        started = self._clock()
        sent = 0
        total = int(self._rate * self._seconds)
        while sent < total and not self._stopping:
            due = min(total, int((self._clock() - started) * self._rate))
            now_ms = self._wall_ms()
            for _ in range(due - sent):
                text, emitted = self._factory.frame(now_ms)
                self.emitted.append(emitted)
                yield text
            sent = max(sent, due)
            await asyncio.sleep(_PACE_TICK_S)
