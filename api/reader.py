"""The API's reads of the candles table: candles, seed records, alerts, open gaps, pipeline status.

Read-only by construction: it calls Query and queue attribute reads only (asserted by the tests),
so on AWS it runs under a role without write permissions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.markets import Market, MarketList
from infra.spec import ResourceSpec
from tasks.aws import alert_records, gap_records, market_items
from tasks.aws.alert_records import LoggedAlert
from tasks.aws.clients import AwsClients
from tasks.core.gaps import Gap
from tasks.core.models import Interval
from tasks.status import PipelineStatus, read_status

Item = dict[str, Any]


@dataclass
class Reader:
    clients: AwsClients
    spec: ResourceSpec
    markets: MarketList
    clock: Callable[[], float] = time.time
    markets_ttl_s: float = 30.0
    _listed: tuple[float, list[str]] | None = field(default=None, repr=False)

    @property
    def _table(self) -> str:
        return self.spec.table.name

    def market_ids(self) -> list[str]:
        """The seed's ``/markets``: ``<market>_<interval>`` of configured markets that have data."""
        now = self.clock()
        if self._listed is None or now - self._listed[0] > self.markets_ttl_s:
            found = [
                f"{m.name}_{i.value}"
                for m in self.markets.markets
                for i in Interval
                if market_items.exists(self.clients.dynamodb, self._table, m.name, i)
            ]
            self._listed = (now, found)
        return list(self._listed[1])

    def items(
        self,
        market: Market,
        interval: Interval,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
    ) -> list[Item]:
        """Items in time order: from ``start_ms`` on, or the newest ``limit`` without a start."""
        newest_first = start_ms is None
        found = market_items.query(
            self.clients.dynamodb,
            self._table,
            market.name,
            interval,
            start_ms,
            end_ms,
            newest_first=newest_first,
            limit=limit,
        )
        return found[::-1] if newest_first else found

    def recent(self, market: Market, interval: Interval, limit: int) -> list[Item]:
        """The newest ``limit`` items, newest first (the seed's order)."""
        return market_items.query(
            self.clients.dynamodb,
            self._table,
            market.name,
            interval,
            newest_first=True,
            limit=limit,
        )

    def open_gaps(self, market: Market) -> list[Gap]:
        if market.kind != "trades":
            return []
        records = gap_records.records(
            self.clients.dynamodb, self._table, market.name, open_only=True
        )
        return [r.gap for r in records]

    def alerts(self, market: Market | None, limit: int) -> list[LoggedAlert]:
        """The newest alerts, of one market or all; scans at most 500 log entries."""
        logged = alert_records.recent(self.clients.dynamodb, self._table, 500)
        mine = [a for a in logged if market is None or a.message.symbol == market.name]
        return mine[:limit]

    def status(self) -> PipelineStatus:
        symbols = [m.name for m in self.markets.markets if m.kind == "trades"]
        return read_status(self.clients, self.spec, symbols, int(self.clock() * 1000))
