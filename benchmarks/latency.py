"""Latency: how long after a trade happens its 1m candle in DynamoDB counts it.

The producer emits trades at a steady rate with trade time = now while the ingest flow runs
continuously in the worker. A poller reads the candles of both symbols every ``poll_s`` (strongly
consistent queries) and notes, for every emitted trade, the first read whose candle's ``trade_ids``
hold its id. Latency = that read's completion time - trade time; the poll interval bounds the error.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.load import Emitted, PacedSource
from benchmarks.pipeline import INGEST_TIMEOUT_S, Stage, produce, start_worker
from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import dynamodb
from tasks.aws.clients import AwsClients
from tasks.core.models import Interval
from tasks.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# After the producer stops, trades still on their way get this long to show up.
DRAIN_S = 15.0
# Time for the flow run to start before the first trade is produced.
FLOW_START_S = 3.0


class VisibilityPoller(threading.Thread):
    """Polls the candles table and records when each emitted trade is first counted."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        emitted: list[Emitted],
        poll_s: float,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(name="visibility-poller", daemon=True)
        self._client = client
        self._table = table
        self._emitted = emitted
        self._poll_s = poll_s
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self._stop_at: float | None = None
        self._seen = 0
        self._pending: dict[str, dict[int, int]] = {}
        self.latencies_ms: list[int] = []
        self.polls = 0
        self.poll_seconds = 0.0
        self.error: BaseException | None = None

    def finish(self, within_s: float) -> None:
        """Keep polling until every emitted trade is visible or ``within_s`` passed, then stop."""
        self._stop_at = time.monotonic() + within_s
        self.join()

    @property
    def missing(self) -> int:
        return sum(len(p) for p in self._pending.values()) + len(self._emitted) - self._seen

    def run(self) -> None:
        try:
            self._poll()
        except BaseException as exc:  # the benchmark reports it after the run
            self.error = exc

    def _poll(self) -> None:
        while True:
            began = time.monotonic()
            self._take_new()
            if self._stop_at is not None and (not self.missing or began > self._stop_at):
                return
            for symbol, waiting in self._pending.items():
                if waiting:
                    self._check(symbol, waiting)
            self.polls += 1
            self.poll_seconds += time.monotonic() - began
            time.sleep(max(0.0, self._poll_s - (time.monotonic() - began)))

    def _take_new(self) -> None:
        count = len(self._emitted)
        for e in self._emitted[self._seen : count]:
            self._pending.setdefault(e.symbol, {})[e.trade_id] = e.trade_time_ms
        self._seen = count

    def _check(self, symbol: str, waiting: dict[int, int]) -> None:
        since = Interval.M1.floor(min(waiting.values()))
        candles = list(
            dynamodb.query_candles(self._client, self._table, symbol, Interval.M1, since)
        )
        read_ms = self._wall_ms()
        ranges = sorted(r for c in candles for r in c.trade_ids)
        starts = [lo for lo, _ in ranges]
        for trade_id in [t for t in waiting if _covered(ranges, starts, t)]:
            self.latencies_ms.append(read_ms - waiting.pop(trade_id))


def _covered(ranges: list[tuple[int, int]], starts: list[int], trade_id: int) -> bool:
    i = bisect.bisect_right(starts, trade_id) - 1
    return i >= 0 and ranges[i][1] >= trade_id


@dataclass
class LatencyResult:
    rate: float
    seconds: float
    poll_s: float
    trades: int
    visible: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    messages: int
    batches: int
    batch_seconds: float
    polls: int
    peak_rss_kb: int
    foreign_cpu_s: float
    foreign_share: float
    report: dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return float(ordered[int(rank) - 1])


def latency(
    stage: Stage,
    settings: Settings,
    *,
    rate: float,
    seconds: float,
    poll_s: float,
    seed: int,
) -> LatencyResult:
    """Produce ``rate`` trades/s for ``seconds`` into a continuously running ingest; time each trade."""
    clients = AwsClients()
    done = provision(clients, resource_spec(settings))
    worker, _ = start_worker(stage, settings, "latency")
    meter = stage.meter(worker.pid)
    try:
        worker.send(
            {"cmd": "ingest", "until_empty": False, "max_seconds": FLOW_START_S + seconds + DRAIN_S}
        )
        time.sleep(FLOW_START_S)
        source = PacedSource(rate, seconds, seed)
        poller = VisibilityPoller(clients.dynamodb, done.table, source.emitted, poll_s)
        poller.start()
        with meter.window():
            stats = produce(settings, source, clients, done.queue_url)
            poller.finish(DRAIN_S)
        answer = worker.answer(INGEST_TIMEOUT_S)
    finally:
        worker.close()
    if poller.error is not None:
        raise RuntimeError("the DynamoDB poller failed") from poller.error
    # A trade never seen counts as infinitely late, so a lossy pipeline cannot look fast.
    samples = [float(x) for x in poller.latencies_ms] + [float("inf")] * poller.missing
    report = answer["report"]
    return LatencyResult(
        rate=rate,
        seconds=seconds,
        poll_s=poll_s,
        trades=len(source.emitted),
        visible=len(poller.latencies_ms),
        p50_ms=percentile(samples, 50),
        p99_ms=percentile(samples, 99),
        max_ms=max(samples),
        messages=stats.messages,
        batches=report["batches"],
        batch_seconds=report["seconds"],
        polls=poller.polls,
        peak_rss_kb=answer["peak_rss_kb"],
        foreign_cpu_s=meter.foreign_cpu_s,
        foreign_share=meter.foreign_share,
        report=report,
    )
