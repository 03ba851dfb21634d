"""Which markets the API serves: a fixed list from the settings, never from a request.

A request names a market by text; it is looked up here, so the only DynamoDB keys the API can
ever build are those of configured markets (``BTCUSDT_1m``), never pipeline state such as
``_gaps`` or ``_alert_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tasks.core.models import Interval
from tasks.settings import Settings

Kind = Literal["trades", "mid"]


@dataclass(frozen=True, slots=True)
class Market:
    name: str
    kind: Kind  # "trades": Binance klines; "mid": a spread-only market's mid price


@dataclass(frozen=True)
class MarketList:
    markets: tuple[Market, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> MarketList:
        trades = [Market(s, "trades") for s in settings.symbols]
        names = {m.name for m in trades}
        mids = [
            Market(m, "mid")
            for m in [*settings.spread_binance_symbols, *settings.spread_btcm_markets]
            if m not in names
        ]
        return cls(tuple(trades + list(dict.fromkeys(mids))))

    def find(self, name: str) -> Market | None:
        return next((m for m in self.markets if m.name == name), None)

    def parse_id(self, market_id: str) -> tuple[Market, Interval] | None:
        """``BTCUSDT_1h`` -> (BTCUSDT, 1h); None unless both parts are known."""
        name, sep, interval = market_id.rpartition("_")
        market = self.find(name) if sep else None
        if market is None or interval not in {i.value for i in Interval}:
            return None
        return market, Interval(interval)

    def names(self) -> list[str]:
        return [m.name for m in self.markets]
