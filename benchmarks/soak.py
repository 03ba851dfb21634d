"""Soak: the whole pipeline at a steady synthetic load for a long time, and whether it holds up.

``./scripts/soak.sh`` (or ``uv run python -m benchmarks.soak``; ``--help`` for options) starts the
benchmark's own moto and Prefect servers (``benchmarks.stack``) and an ingest worker process
(``benchmarks.worker``), then for ``--minutes`` (30) the real producer (parse, pack, gzip, ``SqsSink``)
sends ``--rate`` (1,000) synthetic trades per second, trade time = now (``benchmarks.load``), while the
ingest flow runs as its deployment does (``prefect.yaml``): a run every ``interval`` seconds (60), each
polling for ``max_seconds`` (55), one at a time (a run that overruns its slot is followed at once by
the next), so the churn of a flow run a minute is soaked too. When the producer is done, the run in
progress finishes and one last run drains the queue (``until_empty``).

Every second the queue depth is read; every ``--sample-s`` (30) a progress line prints: elapsed
time, trades sent, queue visible / in flight (and the deepest since the last line), the RSS of every
process, ingest runs, batches and trades (from the worker's log) and the errors so far. The RSS is each
process's ``VmRSS`` read from ``/proc/<pid>/status`` from outside: the moto server, the Prefect server
(each one process), the ingest worker (the flow runs in it) and this process, which is the producer.

The checks, printed with the verdict table at the end (exit status 1 when any fails):

- **queue bounded**: the deepest queue seen (visible + in flight, read every second while producing)
  is at most ``--queue-bound-s`` (30) seconds of production, in messages (the producer's messages per
  second times 30), and the queue is empty after the final drain. The deployment's cadence leaves a
  gap of ``interval - max_seconds`` (5 s) plus a flow run's start between two runs, and a batch takes
  about a second, so a healthy ingest stays under ~10 s of backlog; 30 s is three times that, for a
  shared machine. An ingest that falls behind by more than 30 s / the run's length (under 2% over 30
  minutes) crosses it.
- **RSS flat**, per process: the first third of the run is warm-up; the mean RSS over the samples of
  the last third is at most the middle third's mean plus ``max(--rss-tolerance x middle mean,
  --rss-slack-mb)`` (10% or 30 MB, whichever is larger). moto keeps every S3 object it stores in
  memory (objects under 5 MiB), and the lake grows by design, so moto is judged on its RSS minus the
  bytes of the lake bucket at each sample (its raw RSS is printed beside it).
- **no errors**: zero of each: ERROR / CRITICAL lines and tracebacks in the worker's log and the
  Prefect server's log, 5xx responses and tracebacks in moto's log, ingest commands that failed,
  trades the producer dropped or could not parse, trades rejected to quarantine or messages
  dead-lettered by the ingest, messages on the dead-letter queue at the end. (Warnings and SQS send
  retries are counted and shown, not failed.)
- **candles exact**: every 1m candle in DynamoDB equals the aggregate of exactly the emitted trades
  (``tasks.core.candles.aggregate`` of the emitted lines decoded as the ingest decodes them, minute by
  minute while the run goes; the rebuild benchmark's ``differences``: every traded minute field for
  field with its trade-id set, Binance's empty kline between traded minutes, nothing else), and the
  trades the candles count, the new trades the ingest reports and the trades emitted are one number.

Results go to ``benchmarks/results/soak-<time>/soak.json`` with the services' and the worker's logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import load, rebuild
from benchmarks.bench import RESULTS, SYMBOLS, _environ, _machine, _positive_float
from benchmarks.load import PacedSource
from benchmarks.pipeline import INGEST_TIMEOUT_S, Stage, phase_settings, start_worker
from benchmarks.stack import aws_env, moto_server, prefect_server, services_env
from benchmarks.worker import Worker, WorkerError
from infra.provision import Provisioned, provision
from infra.spec import resource_spec
from producer.main import Producer
from producer.sinks import SqsSink
from tasks.aws import dynamodb, sqs
from tasks.aws.clients import AwsClients
from tasks.core.models import Candle, Interval
from tasks.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
QUEUE_POLL_S = 1.0  # the queue depth is read this often
DEFAULT_MAX_SECONDS = 55.0  # prefect.yaml's ingest-trades parameters, when it cannot be read
DEFAULT_EVERY_S = 60.0  # and its schedule
_SHOWN = 5  # examples kept per kind of error, and candle differences shown


def deployment_cadence() -> tuple[float, float]:
    """(max_seconds, schedule interval s) of the ingest-trades deployment in prefect.yaml."""
    try:
        from deployments.serve import load_entries

        entry = next(e for e in load_entries() if e.name == "ingest-trades")
        return float(entry.parameters["max_seconds"]), float(entry.schedules[0]["interval"])
    except (OSError, StopIteration, KeyError, IndexError, ValueError):
        return DEFAULT_MAX_SECONDS, DEFAULT_EVERY_S


_MAX_SECONDS, _EVERY_S = deployment_cadence()


@dataclass(frozen=True)
class SoakOptions:
    rate: float = 1000.0
    minutes: float = 30.0
    sample_s: float = 30.0
    ingest_max_seconds: float = _MAX_SECONDS
    ingest_every_s: float = _EVERY_S
    queue_bound_s: float = 30.0
    rss_tolerance: float = 0.10
    rss_slack_mb: float = 30.0
    seed: int = 1
    results_dir: Path = RESULTS


# --- what was emitted, and the candles it must give ---------------------------------------------


class RisingWallMs:
    """Wall-clock milliseconds that never go back (an NTP step cannot reopen a finished minute)."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(self._last, time.time_ns() // 1_000_000)
        return self._last


class ExpectedCandles:
    """The 1m candles the emitted trades must give, aggregated a minute at a time.

    Lines are kept only until their minute is over (trade times never go back, so a minute is over
    once a later one has a trade), then decoded as the ingest decodes SQS bodies and aggregated by the
    candle math's own ``aggregate`` (``benchmarks.rebuild.expected_candles``); memory stays flat.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, list[str]] = {}
        self._latest = -1
        self._settled_before = -1
        self.trades = 0
        self.late = 0  # lines of a minute already aggregated (impossible with a rising clock)
        self.candles: dict[str, list[Candle]] = {}

    def add(self, line: str, trade_time_ms: int) -> None:
        minute = Interval.M1.floor(trade_time_ms)
        with self._lock:
            if minute < self._settled_before:
                self.late += 1
            self._open.setdefault(minute, []).append(line)
            self._latest = max(self._latest, minute)
            self.trades += 1

    def settle(self, everything: bool = False) -> None:
        """Aggregate every finished minute (every minute when ``everything``)."""
        with self._lock:
            cut = self._latest + 1 if everything else self._latest
            minutes = sorted(m for m in self._open if m < cut)
            parts = [self._open.pop(m) for m in minutes]
            self._settled_before = max(self._settled_before, cut)
        for lines in parts:
            frame = rebuild.trades_frame(lines, chunk=len(lines))
            for candle in rebuild.expected_candles(frame)[Interval.M1]:
                self.candles.setdefault(candle.symbol, []).append(candle)


def warm_up_checker(trades: int) -> None:
    """Aggregate a minute's worth of synthetic lines once and forget them: polars' first use and its
    allocator's growth to a minute's size are paid before the run, not in the middle of it."""
    lines = load.day(max(1, trades), rebuild.DAY_START_MS, seed=0)
    rebuild.expected_candles(rebuild.trades_frame(lines, chunk=len(lines)))


def data_line(frame: str) -> str:
    """The trade event (an SQS body line) inside a combined-stream frame."""
    start = frame.index('"data":') + len('"data":')
    return frame[start:-1]


class RecordingSource(PacedSource):
    """``PacedSource``, handing every emitted trade line to ``ExpectedCandles`` instead of keeping
    an ``Emitted`` per trade (which would grow this process by ~100 bytes a trade)."""

    def __init__(self, rate: float, seconds: float, seed: int, expected: ExpectedCandles) -> None:
        super().__init__(rate, seconds, seed, wall_ms=RisingWallMs())
        self._expected = expected

    async def frames(self) -> AsyncGenerator[str, None]:
        async with aclosing(super().frames()) as frames:
            async for text in frames:
                emitted = self.emitted.pop()  # the one appended for this frame
                self._expected.add(data_line(text), emitted.trade_time_ms)
                yield text


# --- watching: processes, logs, the queue --------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    """``VmRSS`` of a process, KiB; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


_LEVEL = re.compile(r"\|\s*(ERROR|CRITICAL)\s*\||^(ERROR|CRITICAL)\b")
_WARNING = re.compile(r"\|\s*WARNING\s*\||^WARNING\b")
_HTTP_5XX = re.compile(r'" 5\d\d ')
_BATCH = re.compile(r" - batch \d+: (\d+) messages, (\d+) trades")


@dataclass
class LogScan:
    """Reads a log as it grows: errors, tracebacks, warnings and, in a worker's log, ingest batches."""

    name: str
    path: Path
    http: bool = False  # a moto log: count 5xx responses as errors
    errors: int = 0
    tracebacks: int = 0
    server_errors: int = 0
    warnings: int = 0
    batches: int = 0
    batch_trades: int = 0
    examples: list[str] = field(default_factory=list)
    _offset: int = 0
    _rest: str = ""

    @property
    def failures(self) -> int:
        return self.errors + self.tracebacks + self.server_errors

    def scan(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return
        self._offset += len(chunk)
        lines = (self._rest + chunk.decode("utf-8", "replace")).split("\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if (found := _BATCH.search(line)) is not None:
            self.batches += 1
            self.batch_trades += int(found.group(2))
        elif line.startswith("Traceback (most recent call last)"):
            self.tracebacks += 1
            self._example(line)
        elif _LEVEL.search(line):
            self.errors += 1
            self._example(line)
        elif self.http and _HTTP_5XX.search(line):
            self.server_errors += 1
            self._example(line)
        elif _WARNING.search(line):
            self.warnings += 1

    def _example(self, line: str) -> None:
        if len(self.examples) < _SHOWN:
            self.examples.append(line[:300])

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "errors": self.errors,
            "tracebacks": self.tracebacks,
            "server_errors": self.server_errors,
            "warnings": self.warnings,
            "examples": self.examples,
        }


def lake_size(clients: AwsClients, bucket: str) -> tuple[int, int]:
    """(objects, bytes) in the lake bucket."""
    objects = size = 0
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            objects += 1
            size += obj["Size"]
    return objects, size


# --- the ingest, run as its deployment runs it -----------------------------------------------------


class IngestSchedule(threading.Thread):
    """Ingest commands to the worker as the deployment's schedule starts flow runs: one every
    ``every_s`` (from ``started``), each polling for ``max_seconds``, never two at once (a run that
    overruns its slot is followed at once by the next). ``finish`` lets the current run end."""

    def __init__(self, worker: Worker, max_seconds: float, every_s: float, started: float) -> None:
        super().__init__(name="ingest-schedule", daemon=True)
        self._worker = worker
        self._max_seconds = max_seconds
        self._every_s = every_s
        self._t0 = started
        self._halt = threading.Event()
        self.runs: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def finish(self) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        slot = 0
        while True:
            due = self._t0 + slot * self._every_s
            if self._halt.wait(max(0.0, due - time.monotonic())):
                return
            began = time.monotonic()
            command = {"cmd": "ingest", "until_empty": False, "max_seconds": self._max_seconds}
            try:
                answer = self._worker.call(command, INGEST_TIMEOUT_S)
            except WorkerError as exc:
                self.failures.append(str(exc))
                log.error("ingest run failed: %s", exc)
            else:
                self.runs.append(run_record(answer, began - self._t0))
            # the next slot after this run's start; a late one starts at once
            slot = max(slot + 1, math.floor((time.monotonic() - self._t0) / self._every_s))


def run_record(answer: dict[str, Any], started_s: float) -> dict[str, Any]:
    report = answer["report"]
    keep = ("batches", "messages", "trades", "new_trades", "duplicates", "rejects", "dead_lettered")
    return {
        "started_s": round(started_s, 1),
        "seconds": round(answer["seconds"], 2),
        "cpu_s": round(answer["cpu_s"], 2),
        "rss_kb": answer["rss_kb"],
        "peak_rss_kb": answer["peak_rss_kb"],
        **{k: report[k] for k in keep},
    }


# --- sampling ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the producer started
    trades_sent: int
    messages_sent: int
    visible: int
    in_flight: int
    depth_max: int  # deepest visible + in flight since the previous sample
    rss_kb: dict[str, int | None]
    lake_objects: int
    lake_bytes: int
    ingest_runs: int
    batches: int
    batch_trades: int
    errors: int


class Sampler(threading.Thread):
    """Reads the queue depth every second and takes a ``Sample`` every ``sample_s``, printing it."""

    def __init__(
        self,
        *,
        queue_url: str,
        bucket: str,
        pids: dict[str, int],
        logs: list[LogScan],
        expected: ExpectedCandles,
        producer: Callable[[], Producer | None],
        schedule: IngestSchedule,
        sample_s: float,
        started: float,
        out: Callable[[str], None],
    ) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self._clients = AwsClients()
        self._queue_url = queue_url
        self._bucket = bucket
        self._pids = pids
        self._logs = logs
        self._expected = expected
        self._producer = producer
        self._schedule = schedule
        self._sample_s = sample_s
        self._t0 = started
        self._out = out
        self._halt = threading.Event()
        self._depth_max = 0
        self.depth_max = 0  # over the whole run
        self.depth_polls = 0
        self.samples: list[Sample] = []
        self.error: BaseException | None = None

    def finish(self) -> None:
        """Take the last sample now and stop."""
        self._halt.set()
        self.join()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported as a failed check
            self.error = exc
            log.exception("the sampler failed")

    def _loop(self) -> None:
        self._out(header(list(self._pids)))
        self.take()
        next_sample = self._t0 + self._sample_s
        while not self._halt.wait(QUEUE_POLL_S):
            self._poll_depth()
            self._expected.settle()  # a finished minute's lines are aggregated and let go at once
            if time.monotonic() >= next_sample:
                self.take()
                next_sample += self._sample_s
        last = self.samples[-1]
        recent = time.monotonic() - self._t0 - last.t <= QUEUE_POLL_S
        if not recent or last.trades_sent != self._expected.trades:
            # The end of the run, unless the last sample was just taken and saw every trade sent
            # (one taken a moment before the producer's last trades would not have).
            self.take()
        else:
            self._poll_depth()

    def _poll_depth(self) -> tuple[int, int]:
        visible, in_flight = sqs.depth(self._clients.sqs, self._queue_url)
        self.depth_polls += 1
        self._depth_max = max(self._depth_max, visible + in_flight)
        self.depth_max = max(self.depth_max, self._depth_max)
        return visible, in_flight

    def take(self) -> Sample:
        # RSS first, before this thread's own work of the sample (log scans, listing the lake)
        t = time.monotonic() - self._t0
        rss = {name: rss_kb(pid) for name, pid in self._pids.items()}
        objects, size = lake_size(self._clients, self._bucket)
        visible, in_flight = self._poll_depth()
        for scan in self._logs:
            scan.scan()
        producer = self._producer()
        worker_log = self._logs[0]
        sample = Sample(
            t=round(t, 1),
            trades_sent=self._expected.trades,
            messages_sent=producer.stats.messages if producer else 0,
            visible=visible,
            in_flight=in_flight,
            depth_max=self._depth_max,
            rss_kb=rss,
            lake_objects=objects,
            lake_bytes=size,
            ingest_runs=len(self._schedule.runs),
            batches=worker_log.batches,
            batch_trades=worker_log.batch_trades,
            errors=sum(s.failures for s in self._logs) + len(self._schedule.failures),
        )
        self._depth_max = visible + in_flight
        self.samples.append(sample)
        self._out(progress(sample))
        return sample


def _mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def header(names: Sequence[str]) -> str:
    rss = " ".join(f"{n:>7}" for n in names)
    return (
        f"{'elapsed':>8} {'trades sent':>11} {'queue vis/fly (max)':>20}   RSS MB: {rss}   "
        f"{'runs':>4} {'batches':>7} {'trades ingested':>15} {'errors':>6}"
    )


def progress(s: Sample) -> str:
    queue = f"{s.visible}/{s.in_flight} ({s.depth_max})"
    rss = " ".join(f"{_mb(kb):>7}" for kb in s.rss_kb.values())
    return (
        f"{s.t:>7.0f}s {s.trades_sent:>11,} {queue:>20}           {rss}   "
        f"{s.ingest_runs:>4} {s.batches:>7} {s.batch_trades:>15,} {s.errors:>6}"
    )


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class SoakResult:
    options: dict[str, Any]
    services: dict[str, int]
    produce_s: float
    trades_sent: int
    producer: dict[str, int]
    depth_max: int
    depth_polls: int
    samples: list[Sample]
    ingest_runs: list[dict[str, Any]]
    drain: dict[str, Any]
    final: dict[str, Any]
    logs: dict[str, dict[str, Any]]
    failures: list[str]
    candles: dict[str, int]
    differences: int
    shown_differences: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def soak(
    stage: Stage,
    settings: Settings,
    options: SoakOptions,
    *,
    services: dict[str, int],
    service_logs: dict[str, Path] | None = None,
    out: Callable[[str], None] = print,
) -> SoakResult:
    """Produce at ``options.rate`` for ``options.minutes`` into the scheduled ingest, sampling;
    then drain, check and return everything (``checks`` filled in)."""
    clients = AwsClients()
    done = provision(clients, resource_spec(settings))
    worker, _ = start_worker(stage, settings, "soak")
    pids = {**services, "worker": worker.pid, "soak": os.getpid()}
    logs = [LogScan("worker", worker.log_path)] + [
        LogScan(name, path, http=name == "moto") for name, path in (service_logs or {}).items()
    ]
    warm_up_checker(int(options.rate * 60))
    expected = ExpectedCandles()
    seconds = options.minutes * 60
    source = RecordingSource(options.rate, seconds, options.seed, expected)
    holder: list[Producer] = []
    failures: list[str] = []
    try:
        started = time.monotonic()
        schedule = IngestSchedule(
            worker, options.ingest_max_seconds, options.ingest_every_s, started
        )
        sampler = Sampler(
            queue_url=done.queue_url,
            bucket=done.bucket,
            pids=pids,
            logs=logs,
            expected=expected,
            producer=lambda: holder[0] if holder else None,
            schedule=schedule,
            sample_s=options.sample_s,
            started=started,
            out=out,
        )
        schedule.start()
        sampler.start()
        try:
            stats = _produce(settings, source, clients, done.queue_url, holder)
        finally:
            produce_s = time.monotonic() - started
            sampler.finish()
            out(f"producer done after {produce_s:.0f} s; waiting for the ingest run in progress")
            schedule.finish()
        if sampler.error is not None:
            failures.append(f"sampler: {type(sampler.error).__name__}: {sampler.error}")
        out("draining the queue (one ingest run until empty)")
        try:
            answer = worker.call({"cmd": "ingest", "until_empty": True}, INGEST_TIMEOUT_S)
            drain = run_record(answer, time.monotonic() - started)
        except WorkerError as exc:
            failures.append(str(exc))
            drain = {}
        final = _final_state(clients, done, pids)
    finally:
        worker.close()
    for scan in logs:
        scan.scan()
    expected.settle(everything=True)
    stored = {
        symbol: list(dynamodb.query_candles(clients.dynamodb, done.table, symbol, Interval.M1))
        for symbol in settings.symbols
    }
    diffs = [
        d
        for symbol in settings.symbols
        for d in rebuild.differences(stored[symbol], expected.candles.get(symbol, []))
    ]
    result = SoakResult(
        options={**asdict(options), "results_dir": str(options.results_dir)},
        services=pids,
        produce_s=produce_s,
        trades_sent=expected.trades,
        producer=asdict(stats),
        depth_max=sampler.depth_max,
        depth_polls=sampler.depth_polls,
        samples=sampler.samples,
        ingest_runs=schedule.runs,
        drain=drain,
        final={**final, "late_lines": expected.late},
        logs={scan.name: scan.summary() for scan in logs},
        failures=schedule.failures + failures,
        candles={
            "stored": sum(len(c) for c in stored.values()),
            "traded": sum(1 for c in stored.values() for x in c if not x.is_empty),
            "trade_count": sum(x.trade_count for c in stored.values() for x in c),
        },
        differences=len(diffs),
        shown_differences=diffs[:50],
    )
    result.checks = checks(result, options)
    return result


@dataclass(frozen=True)
class ProducerOutcome:
    """``ProducerStats`` plus the SQS send retries of its sink."""

    trades: int
    messages: int
    bytes: int
    dropped: int
    malformed: int
    retries: int


def _produce(
    settings: Settings,
    source: RecordingSource,
    clients: AwsClients,
    queue_url: str,
    holder: list[Producer],
) -> ProducerOutcome:
    """``benchmarks.pipeline.produce``, keeping the producer where the sampler can read its stats."""

    async def main() -> ProducerOutcome:
        sink = SqsSink(clients.sqs, queue_url, queue_max=settings.send_queue_max)
        producer = Producer(settings, source, sink)
        holder.append(producer)
        stats = await producer.run()
        return ProducerOutcome(**asdict(stats), retries=sink.stats.retries)

    return asyncio.run(main())


def _final_state(clients: AwsClients, done: Provisioned, pids: dict[str, int]) -> dict[str, Any]:
    visible, in_flight = sqs.depth(clients.sqs, done.queue_url)
    dlq_visible, dlq_in_flight = sqs.depth(clients.sqs, done.dlq_url)
    objects, size = lake_size(clients, done.bucket)
    return {
        "visible": visible,
        "in_flight": in_flight,
        "dlq": dlq_visible + dlq_in_flight,
        "lake_objects": objects,
        "lake_bytes": size,
        "rss_kb": {name: rss_kb(pid) for name, pid in pids.items()},
    }


# --- the checks ----------------------------------------------------------------------------------


def _check(name: str, rule: str, measured: str, passed: bool) -> dict[str, Any]:
    return {"check": name, "rule": rule, "measured": measured, "passed": passed}


def thirds(samples: Sequence[Sample], length_s: float) -> tuple[list[Sample], list[Sample]]:
    """The samples of the middle and the last third of a run of ``length_s`` seconds."""
    middle = [s for s in samples if length_s / 3 < s.t <= 2 * length_s / 3]
    last = [s for s in samples if s.t > 2 * length_s / 3]
    return middle, last


def _rss_mb(sample: Sample, name: str) -> float | None:
    kb = sample.rss_kb.get(name)
    if kb is None:
        return None
    held = sample.lake_bytes / MB if name == "moto" else 0.0
    return kb / 1024 - held


def checks(result: SoakResult, options: SoakOptions) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    # queue bounded
    per_s = result.producer["messages"] / result.produce_s if result.produce_s else 0.0
    bound = max(1, math.ceil(per_s * options.queue_bound_s))
    final = result.final
    out.append(
        _check(
            "queue bounded",
            f"max depth (visible + in flight, read every {QUEUE_POLL_S:g} s) <= "
            f"{options.queue_bound_s:g} s of production ({per_s:.2f} msg/s): {bound} messages; "
            "empty after the drain",
            f"max {result.depth_max} over {result.depth_polls} reads; after the drain "
            f"{final['visible']} visible, {final['in_flight']} in flight",
            result.depth_max <= bound and final["visible"] == final["in_flight"] == 0,
        )
    )
    # RSS flat, per process
    middle, last = thirds(result.samples, result.produce_s)
    for name in result.services:
        rule = (
            f"last-third mean <= middle-third mean + max({options.rss_tolerance:.0%}, "
            f"{options.rss_slack_mb:g} MB)"
        )
        label = f"RSS flat: {name}"
        if name == "moto":
            rule += "; RSS minus the lake bytes moto holds in memory"
        m = [v for s in middle if (v := _rss_mb(s, name)) is not None]
        last_values = [v for s in last if (v := _rss_mb(s, name)) is not None]
        if not m or not last_values or len(m) < len(middle) or len(last_values) < len(last):
            out.append(_check(label, rule, "not enough samples (or the process died)", False))
            continue
        mid_mean, last_mean = sum(m) / len(m), sum(last_values) / len(last_values)
        allowed = max(options.rss_tolerance * mid_mean, options.rss_slack_mb)
        measured = (
            f"{mid_mean:.0f} -> {last_mean:.0f} MB ({last_mean - mid_mean:+.1f}, "
            f"allowed +{allowed:.1f}; {len(m)}/{len(last_values)} samples)"
        )
        if name == "moto":
            raw = [s.rss_kb["moto"] or 0 for s in last]
            measured += f"; raw RSS last {sum(raw) / len(raw) / 1024:.0f} MB"
        out.append(_check(label, rule, measured, last_mean - mid_mean <= allowed))
    # no errors
    counts: dict[str, int] = {}
    for name, scan in result.logs.items():
        counts[f"{name} log ERROR lines"] = scan["errors"]
        counts[f"{name} log tracebacks"] = scan["tracebacks"]
        if name == "moto":
            counts["moto 5xx responses"] = scan["server_errors"]
    runs = [*result.ingest_runs, result.drain] if result.drain else result.ingest_runs
    counts["failed ingest commands / sampler"] = len(result.failures)
    counts["producer dropped"] = result.producer["dropped"]
    counts["producer malformed"] = result.producer["malformed"]
    counts["ingest rejects"] = sum(r["rejects"] for r in runs)
    counts["ingest dead-lettered"] = sum(r["dead_lettered"] for r in runs)
    counts["DLQ messages"] = final["dlq"]
    total = sum(counts.values())
    bad = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    warnings = sum(scan["warnings"] for scan in result.logs.values())
    out.append(
        _check(
            "no errors",
            "0 of: ERROR/CRITICAL lines and tracebacks in the logs, moto 5xx, failed ingest "
            "runs, producer drops, rejects, dead letters, DLQ messages",
            (bad or "0") + f" (warnings {warnings}, SQS send retries {result.producer['retries']})",
            total == 0,
        )
    )
    # candles exact
    new = sum(r["new_trades"] for r in runs)
    counted = result.candles["trade_count"]
    sent = result.trades_sent
    exact = not result.differences and new == counted == sent and not final["late_lines"]
    shown = "; ".join(result.shown_differences[:_SHOWN])
    out.append(
        _check(
            "candles exact",
            "every stored 1m candle == aggregate of the emitted trades (empty klines between, "
            "nothing else); trades in candles == new trades ingested == trades emitted",
            f"{result.candles['traded']} traded + "
            f"{result.candles['stored'] - result.candles['traded']} empty candles, "
            f"{result.differences} differences; {counted:,} == {new:,} == {sent:,}"
            + (f"; {shown}" if shown else ""),
            exact,
        )
    )
    return out


def verdict_table(result: SoakResult) -> str:
    rows = [(c["check"], "ok" if c["passed"] else "FAILED", c["measured"]) for c in result.checks]
    width = max(len(r[0]) for r in rows)
    lines = ["", "checks:"]
    lines += [f"  {c['check']}: {c['rule']}" for c in result.checks]
    lines += ["", f"{'check':<{width}}  {'verdict':<7}  measured"]
    lines += [f"{name:<{width}}  {mark:<7}  {measured}" for name, mark, measured in rows]
    lines += ["", f"SOAK {'PASSED' if result.passed else 'FAILED'}"]
    return "\n".join(lines)


def write_results(result: SoakResult, path: Path, extra: dict[str, Any] | None = None) -> None:
    document = {**(extra or {}), **result.summary()}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


# --- the command -----------------------------------------------------------------------------------


def run(options: SoakOptions, settings: Settings, out: Callable[[str], None] = print) -> int:
    """Start the services, soak, print the verdict and write the JSON; 0 when every check passed."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = options.results_dir / f"soak-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {"machine": _machine(), "settings": settings.model_dump(mode="json")}
    out(
        f"soak: {options.rate:g} trades/s for {options.minutes:g} min; ingest every "
        f"{options.ingest_every_s:g} s for {options.ingest_max_seconds:g} s; a line every "
        f"{options.sample_s:g} s; results in {workdir}"
    )
    try:
        with moto_server(workdir) as moto, prefect_server(workdir) as (prefect, home):
            env = services_env(moto.url, prefect.url, home)
            stage = Stage(env, workdir, frozenset({moto.pid, prefect.pid}))
            with _environ(aws_env(moto.url)):
                result = soak(
                    stage,
                    phase_settings(settings, "soak", SYMBOLS),
                    options,
                    services={"moto": moto.pid, "prefect": prefect.pid},
                    service_logs={"moto": workdir / "moto.log", "prefect": workdir / "prefect.log"},
                    out=out,
                )
            extra["prefect_db_bytes"] = sum(f.stat().st_size for f in home.glob("*.db*"))
    except Exception:
        log.exception("the soak could not finish; logs are in %s", workdir)
        return 2
    finally:
        shutil.rmtree(workdir / "prefect-home", ignore_errors=True)
    out(verdict_table(result))
    path = workdir / "soak.json"
    write_results(result, path, extra)
    out(f"\nresults: {path}")
    return 0 if result.passed else 1


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def parse_options(argv: Sequence[str] | None = None) -> SoakOptions:
    d = SoakOptions()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=(
            "Soak the whole pipeline (producer -> SQS -> scheduled ingest runs -> S3 + DynamoDB) "
            "at a steady synthetic load on a private moto and Prefect server; check that the "
            "queue stays bounded, every process's memory flat, nothing errs and the candles are "
            "exact. Exit status 1 when a check fails, 2 when the soak could not run."
        ),
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=d.rate,
        help="trades per second (default %(default)g)",
    )
    parser.add_argument(
        "--minutes",
        type=_positive_float,
        default=d.minutes,
        help="length of the load (default %(default)g)",
    )
    parser.add_argument(
        "--sample-s",
        type=_positive_float,
        default=d.sample_s,
        help="seconds between progress lines / samples (default %(default)g)",
    )
    parser.add_argument(
        "--ingest-max-seconds",
        type=_positive_float,
        default=d.ingest_max_seconds,
        help="max_seconds of each ingest run (default %(default)g, from prefect.yaml)",
    )
    parser.add_argument(
        "--ingest-every",
        type=_positive_float,
        default=d.ingest_every_s,
        help="seconds between scheduled ingest runs (default %(default)g, from prefect.yaml)",
    )
    parser.add_argument(
        "--queue-bound-s",
        type=_positive_float,
        default=d.queue_bound_s,
        help="the queue may hold at most this many seconds of production (default %(default)g)",
    )
    parser.add_argument(
        "--rss-tolerance",
        type=_non_negative,
        default=d.rss_tolerance,
        help="RSS growth allowed, last third over middle third, as a fraction (default %(default)g)",
    )
    parser.add_argument(
        "--rss-slack-mb",
        type=_non_negative,
        default=d.rss_slack_mb,
        help="RSS growth always allowed, MB (default %(default)g)",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic trades")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=d.results_dir,
        help="where run directories go (default benchmarks/results)",
    )
    args = parser.parse_args(argv)
    return SoakOptions(
        rate=args.rate,
        minutes=args.minutes,
        sample_s=args.sample_s,
        ingest_max_seconds=args.ingest_max_seconds,
        ingest_every_s=args.ingest_every,
        queue_bound_s=args.queue_bound_s,
        rss_tolerance=args.rss_tolerance,
        rss_slack_mb=args.rss_slack_mb,
        seed=args.seed,
        results_dir=args.results_dir,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "urllib3", "producer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run(options, Settings(), out=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
