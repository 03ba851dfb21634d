"""The measured runs: producer -> SQS -> ingest flow -> S3 + DynamoDB, and moto alone on the same load.

Everything here talks to the benchmark's own moto server through the standard AWS environment, which
``benchmarks.bench`` sets for the whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.cpu import CpuMeter
from benchmarks.worker import Worker
from infra.provision import Provisioned, provision
from infra.spec import resource_spec
from producer.batching import Body, Packer
from producer.main import Producer, ProducerStats
from producer.parse import TradeFrame, parse_frame
from producer.sinks import SqsSink
from producer.sources import Source
from tasks.aws import dynamodb, sqs
from tasks.aws.clients import AwsClients
from tasks.core.models import Candle, Interval
from tasks.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

WARM_UP_TIMEOUT_S = 600.0
INGEST_TIMEOUT_S = 3600.0
_YIELD_EVERY_TRADES = 256  # the sending loop lets the sink's sender tasks run this often


class OnePerMessage(Packer):
    """The baseline's packer: every trade goes out alone, in its own SQS message."""

    def add(self, trade: TradeFrame, now: float) -> list[Body]:
        return super().add(trade, now) + self.flush_all()


@dataclass
class SentLoad:
    """What the producer put on the queue, kept to replay the same load against moto alone."""

    messages: list[sqs.OutgoingMessage] = field(default_factory=list)

    def send(self, client: SQSClient, url: str, batch: list[sqs.OutgoingMessage]) -> list[str]:
        errors = sqs.send_batch(client, url, batch)
        if not errors:
            self.messages += batch
        return errors


def produce(
    settings: Settings, source: Source, clients: AwsClients, queue_url: str
) -> ProducerStats:
    """Run the real producer (parse, pack, gzip, SqsSink) over ``source`` until it ends."""

    async def main() -> ProducerStats:
        sink = SqsSink(clients.sqs, queue_url, queue_max=settings.send_queue_max)
        return await Producer(settings, source, sink).run()

    return asyncio.run(main())


def parse(frames: Sequence[str]) -> list[TradeFrame]:
    """The producer's parser over every frame (what it does per websocket message)."""
    trades = [parse_frame(f) for f in frames]
    return [t for t in trades if t is not None]


def pack_and_send(
    settings: Settings,
    trades: Sequence[TradeFrame],
    clients: AwsClients,
    queue_url: str,
    sent: SentLoad,
    *,
    one_per_message: bool = False,
) -> int:
    """The producer's sending path over parsed trades: its packer, gzip and SqsSink; returns the
    number of trades dropped (the sink drops loudly rather than block)."""
    kind = OnePerMessage if one_per_message else Packer
    packer = kind(
        max_message_bytes=settings.max_message_bytes,
        gzip_min_bytes=settings.gzip_min_bytes,
        flush_interval_s=settings.flush_interval_s,
        max_raw_bytes=max(settings.max_body_bytes, settings.max_message_bytes),
    )

    async def main() -> int:
        sink = SqsSink(clients.sqs, queue_url, queue_max=settings.send_queue_max, send=sent.send)
        async with sink:
            for i, trade in enumerate(trades):
                for body in packer.add(trade, time.monotonic()):
                    sink.offer(body)
                if i % _YIELD_EVERY_TRADES == 0:
                    await asyncio.sleep(0)
            for body in packer.flush_all():
                sink.offer(body)
        return sink.stats.dropped_trades

    return asyncio.run(main())


def phase_settings(
    settings: Settings, name: str, symbols: Sequence[str], **update: Any
) -> Settings:
    """The run's settings with its own resource names (a fresh queue, bucket and table per phase)."""
    return settings.model_copy(
        update={"prefix": f"bench-{name}", "lake_bucket": None, "symbols": list(symbols), **update}
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """``CANDLEFLOW_*`` variables that make ``Settings()`` in the worker equal ``settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        env[f"CANDLEFLOW_{name.upper()}"] = text
    return env


@dataclass(frozen=True)
class Stage:
    """What every phase needs: the workers' environment, where logs go, the services' sessions."""

    env: dict[str, str]
    workdir: Path
    sessions: frozenset[int]

    def meter(self, *pids: int) -> CpuMeter:
        """A CPU meter counting these services, the given worker pids and this process as ours."""
        return CpuMeter(set(self.sessions) | set(pids))


def start_worker(stage: Stage, settings: Settings, name: str) -> tuple[Worker, int]:
    """An ingest worker for ``settings``, warmed up (imports, GX context, a first flow run on the
    empty queue); returns it and its RSS after the warm-up, KiB."""
    worker = Worker({**stage.env, **settings_env(settings)}, stage.workdir / f"worker-{name}.log")
    try:
        worker.answer(WARM_UP_TIMEOUT_S)
        warm = worker.call({"cmd": "ingest", "until_empty": True}, WARM_UP_TIMEOUT_S)
    except BaseException:
        worker.close()
        raise
    return worker, int(warm["rss_kb"])


@dataclass
class ThroughputResult:
    trades: int
    one_per_message: bool
    rounds: int
    messages: int
    message_bytes: int
    parse_s: float
    producer_s: float
    producer_cpu_s: float
    ingest_s: float
    ingest_cpu_s: float
    batches: int
    object_sizes: list[int]
    candles: int
    exact: bool
    startup_rss_kb: int
    peak_rss_kb: int
    foreign_cpu_s: float
    foreign_share: float
    reports: list[dict[str, Any]]

    @property
    def parse_rate(self) -> float:
        return self.trades / self.parse_s

    @property
    def producer_rate(self) -> float:
        return self.trades / self.producer_s

    @property
    def ingest_rate(self) -> float:
        return self.trades / self.ingest_s

    @property
    def end_to_end_rate(self) -> float:
        """Trades per second of producer sending plus ingest (parsing frames left out)."""
        return self.trades / (self.producer_s + self.ingest_s)

    @property
    def with_parse_rate(self) -> float:
        return self.trades / (self.parse_s + self.producer_s + self.ingest_s)

    def summary(self) -> dict[str, Any]:
        rates = ("parse_rate", "producer_rate", "ingest_rate", "end_to_end_rate", "with_parse_rate")
        return {**asdict(self), **{name: getattr(self, name) for name in rates}}


def throughput(
    stage: Stage,
    settings: Settings,
    frames: Sequence[str],
    name: str,
    *,
    round_trades: int,
    one_per_message: bool = False,
    profile: Path | None = None,
) -> tuple[ThroughputResult, SentLoad]:
    """Parse the frames, then round by round: the producer pre-loads the queue (timed), the ingest
    flow drains it (timed)."""
    clients = AwsClients()
    done = provision(clients, resource_spec(settings))
    began = time.perf_counter()
    trades = parse(frames)
    parse_s = time.perf_counter() - began
    sent = SentLoad()
    worker, startup_rss = start_worker(stage, settings, name)
    meter = stage.meter(worker.pid)
    try:
        producer_s = ingest_s = producer_cpu_s = ingest_cpu_s = 0.0
        reports: list[dict[str, Any]] = []
        answer: dict[str, Any] = {}
        rounds = range(0, len(trades), round_trades)
        for start in rounds:
            began, cpu = time.perf_counter(), time.process_time()
            with meter.window():
                dropped = pack_and_send(
                    settings,
                    trades[start : start + round_trades],
                    clients,
                    done.queue_url,
                    sent,
                    one_per_message=one_per_message,
                )
            producer_s += time.perf_counter() - began
            producer_cpu_s += time.process_time() - cpu
            if dropped:
                raise RuntimeError(f"the producer dropped {dropped} trades")
            command: dict[str, Any] = {"cmd": "ingest", "until_empty": True}
            if profile is not None:
                command["profile"] = str(profile)
            with meter.window():
                answer = worker.call(command, INGEST_TIMEOUT_S)
            ingest_s += answer["seconds"]
            ingest_cpu_s += answer["cpu_s"]
            reports.append(answer["report"])
    finally:
        worker.close()
    candles = _candles(clients, done, settings.symbols)
    lake = _objects(clients, done.bucket)
    new = sum(r["new_trades"] for r in reports)
    counted = sum(c.trade_count for c in candles)
    result = ThroughputResult(
        trades=len(frames),
        one_per_message=one_per_message,
        rounds=len(rounds),
        messages=len(sent.messages),
        message_bytes=sum(m.size for m in sent.messages),
        parse_s=parse_s,
        producer_s=producer_s,
        producer_cpu_s=producer_cpu_s,
        ingest_s=ingest_s,
        ingest_cpu_s=ingest_cpu_s,
        batches=sum(r["batches"] for r in reports),
        object_sizes=[n for _, n in lake],
        candles=sum(1 for c in candles if not c.is_empty),
        exact=new == counted == len(frames),
        startup_rss_kb=startup_rss,
        peak_rss_kb=answer["peak_rss_kb"],
        foreign_cpu_s=meter.foreign_cpu_s,
        foreign_share=meter.foreign_share,
        reports=reports,
    )
    return result, sent


def _candles(clients: AwsClients, done: Provisioned, symbols: Sequence[str]) -> list[Candle]:
    return [
        c
        for symbol in symbols
        for c in dynamodb.query_candles(clients.dynamodb, done.table, symbol, Interval.M1)
    ]


def _objects(clients: AwsClients, bucket: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
    return out
