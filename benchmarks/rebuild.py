"""The rebuild phase: one UTC day of one symbol's 1m, 1h and 1d candles rebuilt from the lake.

The target: rebuilding a day of candles for one symbol from the lake (a synthetic day of at least a
million trades) takes at most 10 s on this machine; its peak memory is reported next to it.

Setup, not timed: fresh resources (prefix ``bench-rebuild``) on the benchmark's moto server; a day of
BTCUSDT trades (``benchmarks.load.day``: consecutive ids, random-walk prices with 8 decimals, trade
times spread over the 24 hours) decoded as the ingest decodes SQS bodies, one body per
``CHUNK_TRADES`` trades, and written to the lake as the ingest writes a batch
(``tasks.core.lake.trade_objects`` per body: Parquet and raw NDJSON per hour partition), so each hour
partition holds several objects. No candle is stored.

Timed: the ``backfill`` flow with ``fetch_missing=False`` over the day (read the lake's Parquet,
rebuild the 1m candles, empty klines, roll 1h and 1d up, rewrite the candle lake objects) in a worker
process (``benchmarks.worker backfill``), warmed up first by a backfill over an empty minute of the
day before. It runs twice: the first build (nothing stored, every candle written) and the re-run
(everything stored and unchanged: the idempotent case). The worker resets its peak RSS before each
run, so each peak is that run's own. Where the time went comes from the Prefect API afterwards (each
task run's running time): read lake; rebuild 1m (``rebuild_candles``, ``fill_empty_candles``,
``mark_rollups_dirty``, ``recheck_gaps``); rollup (the ``rollup-candles`` subflow, its own export
included); export (the backfill's ``export_candles``); other (flow engine, Prefect API, gap reads).

Verified after each run, not timed: the stored 1m, 1h and 1d candles are ``aggregate`` of the trades,
with Binance's empty klines between traded intervals and nothing else, and every candle lake object
of the day exists. A difference stops the benchmark (``RebuildMismatch``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks import floors, load
from benchmarks.cpu import sessions_cpu_s
from benchmarks.pipeline import WARM_UP_TIMEOUT_S, Stage, settings_env
from benchmarks.worker import Worker
from infra.provision import provision
from infra.spec import ResourceSpec, resource_spec
from tasks.aws import dynamodb, s3
from tasks.aws.clients import AwsClients
from tasks.core.candle_lake import candle_key, spans_between
from tasks.core.candles import aggregate
from tasks.core.keys import iso_millis, iso_time
from tasks.core.lake import trade_objects
from tasks.core.models import Candle, Interval, empty_candle
from tasks.core.rollup import same_kline
from tasks.core.trades import decode_lines, lines_frame, typed_trades
from tasks.settings import Settings

log = logging.getLogger(__name__)

SYMBOL = load.MARKETS[0].symbol
DAY_START_MS = 1_723_075_200_000  # 2024-08-08T00:00:00Z
DAY_MS = load.DAY_MS
CHUNK_TRADES = 10_000  # trades per SQS body and lake batch: several objects per hour partition
REBUILD_TIMEOUT_S = 3600.0
RUNS = (
    ("first", "first build (no candles stored)"),
    ("rerun", "re-run (all stored, nothing changed)"),
)
BREAKDOWN = {  # the backfill's own task runs, grouped; "rollup" is the subflow's run
    "read lake": ("read_lake",),
    "rebuild 1m": ("rebuild_candles", "fill_empty_candles", "mark_rollups_dirty", "recheck_gaps"),
    "export": ("export_candles",),
}
_PUT_THREADS = 8
_SHOWN_DIFFERENCES = 5


class RebuildMismatch(RuntimeError):
    """The stored candles after a rebuild are not the aggregate of the lake's trades."""


@dataclass(frozen=True)
class LakeLoad:
    parquet_objects: int
    parquet_bytes: int
    raw_objects: int
    raw_bytes: int


@dataclass
class RebuildRun:
    key: str
    label: str
    seconds: float
    cpu_s: float
    moto_cpu_s: float  # the benchmark's moto server's CPU during the run
    prefect_cpu_s: float  # the Prefect server's
    foreign_cpu_s: float
    foreign_share: float
    peak_rss_kb: int
    rss_before_kb: int
    peak_reset: bool
    trades_per_s: float
    minutes: int
    minutes_written: int
    rollup: str
    breakdown: dict[str, float]
    timings: dict[str, Any]
    profile: str | None


@dataclass
class RebuildResult:
    trades: int
    symbol: str
    day: str
    chunk_trades: int
    lake: LakeLoad
    setup_s: float
    startup_rss_kb: int
    candles: dict[str, int]
    exact: bool
    runs: list[RebuildRun]
    floor: dict[str, float] | None = None  # the DynamoDB calls alone (benchmarks.floors)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def trades_frame(lines: Sequence[str], chunk: int) -> pl.DataFrame:
    """The trade lines decoded as the ingest decodes SQS bodies (one body per ``chunk`` lines, sent a
    second after its last trade), typed as the lake stores them."""
    messages: list[tuple[str, int, bytes]] = []
    for n, start in enumerate(range(0, len(lines), chunk)):
        part = lines[start : start + chunk]
        sent_ms = int(json.loads(part[-1])["T"]) + 1000
        messages.append((f"bench-rebuild-{n}", sent_ms, "\n".join(part).encode()))
    rows, rejects = decode_lines(lines_frame(messages))
    if rejects:
        raise ValueError(f"{len(rejects)} synthetic lines do not decode, e.g. {rejects[0]}")
    return typed_trades(rows)


def write_lake(
    clients: AwsClients, spec: ResourceSpec, trades: pl.DataFrame, chunk: int
) -> LakeLoad:
    """Put the trades into the lake as the ingest does, one batch (``trade_objects``) per chunk."""
    bucket = spec.bucket
    objects = [
        obj
        for start in range(0, trades.height, chunk)
        for obj in trade_objects(
            trades.slice(start, chunk), bucket.raw_prefix, bucket.trades_prefix
        )
    ]
    with ThreadPoolExecutor(_PUT_THREADS) as pool:
        list(
            pool.map(
                lambda o: s3.put(clients.s3, bucket.name, o.key, o.body, o.content_type), objects
            )
        )
    parquet = [o for o in objects if o.key.endswith(".parquet")]
    raw = [o for o in objects if not o.key.endswith(".parquet")]
    return LakeLoad(
        len(parquet), sum(len(o.body) for o in parquet), len(raw), sum(len(o.body) for o in raw)
    )


def expected_candles(trades: pl.DataFrame) -> dict[Interval, list[Candle]]:
    """The candles of every interval straight from the trades (candle math's own aggregate)."""
    rows = trades.select("symbol", "trade_id", "price", "quantity", "is_buyer_maker", "trade_time")
    return {interval: aggregate(rows, interval) for interval in Interval}


def differences(stored: Sequence[Candle], expected: Sequence[Candle]) -> list[str]:
    """How stored candles of one market and interval differ from the expected traded ones, with
    Binance's empty kline (the previous close) expected for every interval between traded ones."""
    want = {c.open_time: c for c in expected}
    have = {c.open_time: c for c in stored}
    if not want:
        return [f"{iso_time(t)}: stored, but no trades" for t in sorted(have)]
    first = min(want.values(), key=lambda c: c.open_time)
    symbol, interval = first.symbol, first.interval
    out: list[str] = []
    close = first.close
    for t in range(first.open_time, max(want) + 1, interval.ms):
        ref = want.get(t) or empty_candle(symbol, interval, t, close)
        got = have.pop(t, None)
        if got is None:
            out.append(f"{interval.value} {iso_time(t)}: not stored")
        elif not same_kline(got, ref):
            out.append(f"{interval.value} {iso_time(t)}: stored {got} != expected {ref}")
        close = ref.close
    out += [f"{interval.value} {iso_time(t)}: stored outside the traded span" for t in sorted(have)]
    return out


def verify(
    clients: AwsClients, spec: ResourceSpec, expected: dict[Interval, list[Candle]], label: str
) -> dict[str, int]:
    """Stored candles per interval, after checking them and the day's candle objects; raises
    ``RebuildMismatch`` with the first differences."""
    found: list[str] = []
    counts: dict[str, int] = {}
    for interval, candles in expected.items():
        stored = list(dynamodb.query_candles(clients.dynamodb, spec.table.name, SYMBOL, interval))
        counts[interval.value] = len(stored)
        found += differences(stored, candles)
    prefix = spec.bucket.candles_prefix
    keys = set(s3.list_keys(clients.s3, spec.bucket.name, f"{prefix}/"))
    day_end = DAY_START_MS + DAY_MS - 1
    found += [
        f"candle object {key} missing"
        for interval in Interval
        for span in spans_between(SYMBOL, interval, DAY_START_MS, day_end)
        if (key := candle_key(prefix, span)) not in keys
    ]
    if found:
        shown = "; ".join(found[:_SHOWN_DIFFERENCES])
        raise RebuildMismatch(
            f"after the {label}, {len(found)} stored candle(s) or object(s) differ from the "
            f"aggregate of the lake's trades: {shown}"
        )
    return counts


def _command(start_ms: int, end_ms: int, profile: Path | None = None) -> dict[str, Any]:
    return {
        "cmd": "backfill",
        "start": iso_millis(start_ms),
        "end": iso_millis(end_ms),
        "symbols": [SYMBOL],
        "fetch_missing": False,
        "profile": str(profile) if profile else None,
    }


def start_worker(stage: Stage, settings: Settings) -> tuple[Worker, int]:
    """A backfill worker, warmed up by a backfill over an empty minute of the day before (imports,
    the first Prefect API calls, the rollup subflow); returns it and its RSS after that, KiB."""
    env = {**stage.env, **settings_env(settings)}
    worker = Worker(env, stage.workdir / "worker-rebuild.log", flow="backfill")
    warm_start = DAY_START_MS - DAY_MS
    try:
        worker.answer(WARM_UP_TIMEOUT_S)
        warm = worker.call(_command(warm_start, warm_start + 59_999), WARM_UP_TIMEOUT_S)
    except BaseException:
        worker.close()
        raise
    return worker, int(warm["rss_kb"])


def breakdown(timings: dict[str, Any], seconds: float) -> dict[str, float]:
    """Seconds per step: the grouped task runs, the rollup subflow, and the rest of the wall time."""
    tasks = timings["tasks"]
    out = {
        "read lake": sum(tasks.get(n, 0.0) for n in BREAKDOWN["read lake"]),
        "rebuild 1m": sum(tasks.get(n, 0.0) for n in BREAKDOWN["rebuild 1m"]),
        "rollup": sum(s["seconds"] for s in timings["subflows"].values()),
        "export": sum(tasks.get(n, 0.0) for n in BREAKDOWN["export"]),
    }
    out["other"] = seconds - sum(out.values())
    return out


def _services_cpu_s(stage: Stage, moto_pid: int | None) -> tuple[float, float]:
    """CPU seconds so far of moto and of the other services (all of them when moto is unknown)."""
    moto = {moto_pid} if moto_pid in stage.sessions else set()
    return sessions_cpu_s(moto), sessions_cpu_s(set(stage.sessions) - moto)


def rebuild(
    stage: Stage,
    settings: Settings,
    count: int,
    seed: int,
    *,
    chunk: int = CHUNK_TRADES,
    moto_pid: int | None = None,
    profile: bool = False,
) -> RebuildResult:
    """Set the day up, time the first build and the re-run, verify after each."""
    clients = AwsClients()
    spec = resource_spec(settings)
    provision(clients, spec)
    began = time.perf_counter()
    trades = trades_frame(load.day(count, DAY_START_MS, seed), chunk)
    lake = write_lake(clients, spec, trades, chunk)
    expected = expected_candles(trades)
    del trades
    setup_s = time.perf_counter() - began
    worker, startup_rss = start_worker(stage, settings)
    runs: list[RebuildRun] = []
    counts: dict[str, int] = {}
    try:
        for key, label in RUNS:
            path = stage.workdir / f"rebuild-{key}.prof" if profile else None
            meter = stage.meter(worker.pid)
            moto, prefect = _services_cpu_s(stage, moto_pid)
            with meter.window():
                answer = worker.call(
                    _command(DAY_START_MS, DAY_START_MS + DAY_MS - 1, path), REBUILD_TIMEOUT_S
                )
            moto_after, prefect_after = _services_cpu_s(stage, moto_pid)
            timings = worker.call(
                {"cmd": "timings", "flow_run_id": answer["flow_run_id"]}, WARM_UP_TIMEOUT_S
            )
            report = answer["report"]
            runs.append(
                RebuildRun(
                    key=key,
                    label=label,
                    seconds=answer["seconds"],
                    cpu_s=answer["cpu_s"],
                    moto_cpu_s=moto_after - moto,
                    prefect_cpu_s=prefect_after - prefect,
                    foreign_cpu_s=meter.foreign_cpu_s,
                    foreign_share=meter.foreign_share,
                    peak_rss_kb=answer["peak_rss_kb"],
                    rss_before_kb=answer["rss_before_kb"],
                    peak_reset=answer["peak_reset"],
                    trades_per_s=count / answer["seconds"],
                    minutes=report["rebuilt"].get(SYMBOL, 0),
                    minutes_written=report["written"].get(SYMBOL, 0),
                    rollup=report["rollup"],
                    breakdown=breakdown(timings, answer["seconds"]),
                    timings=timings,
                    profile=str(path) if path else None,
                )
            )
            run = runs[-1]
            log.info(
                "rebuild, %s: %.2f s (CPU %.2f s), peak RSS %d MB; %s",
                label,
                run.seconds,
                run.cpu_s,
                run.peak_rss_kb // 1024,
                ", ".join(f"{k} {v:.2f} s" for k, v in run.breakdown.items()),
            )
            counts = verify(clients, spec, expected, label)
    finally:
        worker.close()
    moto, _ = _services_cpu_s(stage, moto_pid)
    floor = floors.rebuild_floor(settings, expected)
    floor_moto_s = _services_cpu_s(stage, moto_pid)[0] - moto
    log.info("rebuild, DynamoDB alone: %.2f s (moto CPU %.2f s)", floor.seconds, floor_moto_s)
    return RebuildResult(
        trades=count,
        symbol=SYMBOL,
        day=iso_time(DAY_START_MS)[:10],
        chunk_trades=chunk,
        lake=lake,
        setup_s=setup_s,
        startup_rss_kb=startup_rss,
        candles=counts,
        exact=True,
        runs=runs,
        floor={**asdict(floor), "moto_cpu_s": floor_moto_s},
    )
