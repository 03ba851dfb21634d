"""The pipeline's state at a glance, for ``GET /health`` and ``candleflow monitor``.

Reads only: queue depths, the ingest's and producers' heartbeats, each symbol's newest candle and
open gaps, recent alerts. Works the same on the embedded emulator and on AWS.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from infra.spec import ResourceSpec
from tasks.aws import alert_records, gap_records, market_items, sqs, status_records
from tasks.aws.clients import AwsClients
from tasks.core.heartbeat import IngestBeat, ProducerBeat
from tasks.core.keys import iso_time
from tasks.core.models import Interval

log = logging.getLogger(__name__)

STALE_INGEST_MS = 3 * 60_000  # a queue with messages and no batch done for this long: stuck
LATE_MESSAGE_S = 5 * 60  # messages waiting this long: the ingest is falling behind
PRODUCER_GONE_MS = 10 * 60_000  # producers not heard of for this long are not listed


@dataclass(frozen=True, slots=True)
class QueueStatus:
    name: str
    visible: int
    in_flight: int
    dlq_name: str
    dlq_visible: int


@dataclass(frozen=True, slots=True)
class SymbolStatus:
    symbol: str
    last_candle: str | None  # open time of the newest 1m kline
    last_trade_ms: int | None  # newest trade the ingest stored
    lag_s: float | None  # now minus that trade's time
    open_gaps: int
    missing_trades: int


@dataclass(frozen=True, slots=True)
class AlertLine:
    minute: str
    symbol: str
    rule: str
    kind: str
    severity: str
    subject: str


@dataclass(frozen=True)
class PipelineStatus:
    checked_ms: int
    queues: list[QueueStatus]
    oldest_message_age_s: int | None  # CloudWatch's, None where it has no datapoint
    ingest: IngestBeat | None
    producers: list[ProducerBeat]
    symbols: list[SymbolStatus]
    alerts: list[AlertLine] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What an operator should look at, as sentences naming the queue, symbol or setting."""
        found = []
        for q in self.queues:
            if q.dlq_visible:
                found.append(
                    f"{q.dlq_visible} messages in the dead-letter queue {q.dlq_name}: each names "
                    "its error in the candleflow-error attribute"
                )
        trades = self.queues[0]
        behind = self.ingest is None or self.checked_ms - self.ingest.updated_ms > STALE_INGEST_MS
        if trades.visible and behind:
            found.append(
                f"{trades.visible} messages wait in {trades.name} and no ingest batch finished in "
                f"the last {STALE_INGEST_MS // 60_000} minutes: is the ingest-trades deployment running?"
            )
        if self.oldest_message_age_s is not None and self.oldest_message_age_s > LATE_MESSAGE_S:
            found.append(
                f"the oldest message in {trades.name} is {self.oldest_message_age_s} s old: "
                "the ingest is falling behind (add workers or raise CANDLEFLOW_BATCH_MAX_MESSAGES)"
            )
        for s in self.symbols:
            if s.open_gaps:
                found.append(
                    f"{s.symbol}: {s.open_gaps} open gaps ({s.missing_trades} trades): "
                    "see `candleflow gaps`, fill with `candleflow backfill`"
                )
        return found

    def as_dict(self) -> dict[str, Any]:
        problems = self.problems
        view = asdict(self)
        view["status"] = "degraded" if problems else "ok"
        view["problems"] = problems
        view["checked_at"] = iso_time(self.checked_ms)
        return view


def _queue(clients: AwsClients, name: str, dlq_name: str) -> QueueStatus:
    visible, in_flight = sqs.depth(clients.sqs, sqs.queue_url(clients.sqs, name))
    dlq_visible, dlq_in_flight = sqs.depth(clients.sqs, sqs.queue_url(clients.sqs, dlq_name))
    return QueueStatus(name, visible, in_flight, dlq_name, dlq_visible + dlq_in_flight)


def _last_candle(clients: AwsClients, table: str, symbol: str) -> str | None:
    items = market_items.query(
        clients.dynamodb, table, symbol, Interval.M1, newest_first=True, limit=30
    )
    klines = [i for i in items if "version" in i and int(i["trade_count"]["N"]) > 0]
    return str(klines[0]["timestamp"]["S"]) if klines else None


def _oldest_age(clients: AwsClients, queue: str, now_ms: int) -> int | None:
    try:
        return sqs.oldest_message_age_s(clients.cloudwatch, queue, now_ms / 1000)
    except Exception as exc:  # CloudWatch unreachable or not allowed: the rest still answers
        log.warning("no ApproximateAgeOfOldestMessage for %s from CloudWatch: %s", queue, exc)
        return None


def read_status(
    clients: AwsClients,
    spec: ResourceSpec,
    symbols: list[str],
    now_ms: int,
    alerts: int = 10,
) -> PipelineStatus:
    table = spec.table.name
    queues = [
        _queue(clients, spec.queue.name, spec.queue.dlq_name),
        _queue(clients, spec.samples_queue.name, spec.samples_queue.dlq_name),
    ]
    beats = status_records.read(clients.dynamodb, table)
    gaps = gap_records.records(clients.dynamodb, table, open_only=True)
    rows = []
    for symbol in symbols:
        mine = [r.gap for r in gaps if r.gap.symbol == symbol]
        last = beats.last_trade_ms.get(symbol)
        rows.append(
            SymbolStatus(
                symbol,
                _last_candle(clients, table, symbol),
                last,
                None if last is None else max(0.0, (now_ms - last) / 1000),
                len(mine),
                sum(g.size for g in mine),
            )
        )
    logged = alert_records.recent(clients.dynamodb, table, alerts) if alerts else []
    return PipelineStatus(
        checked_ms=now_ms,
        queues=queues,
        oldest_message_age_s=_oldest_age(clients, spec.queue.name, now_ms),
        ingest=beats.ingest,
        producers=[p for p in beats.producers if now_ms - p.sent_ms < PRODUCER_GONE_MS],
        symbols=rows,
        alerts=[
            AlertLine(
                iso_time(a.message.minute),
                a.message.symbol,
                a.message.rule.value,
                a.message.kind,
                a.message.severity,
                a.message.subject,
            )
            for a in logged
        ],
    )
