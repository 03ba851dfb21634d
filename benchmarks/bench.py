"""The candleflow benchmark: the ingest pipeline end to end, and rebuilding candles from the lake.

Run it as ``candleflow bench`` or ``uv run python -m benchmarks.bench`` (``--help`` for options). It
starts its own services, each a subprocess on a free loopback port, and stops them at the end:

- a moto server (``python -m moto.server``), so moto's CPU and memory stay out of the ingest process;
- a Prefect server (``prefect server start``) with a throw-away ``PREFECT_HOME`` in the run directory;
  ingest workers use it through ``PREFECT_API_URL``. One server for every phase is sturdier and cheaper
  than an ephemeral server per worker process, and it is what a deployment looks like.

The ingest flow runs in a worker subprocess (``benchmarks.worker``) so its peak RSS is its own. Each
worker is warmed up first (imports of great-expectations and prefect, the GX context, one flow run
on the empty queue); none of that is timed. Each phase gets fresh resources (its own name prefix).

Phases:

1. **throughput** - ``--trades`` synthetic trades (``benchmarks.load``: BTCUSDT and ETHUSDT,
   consecutive ids, random-walk prices, 1,000 trades/s of trade time) are parsed by the producer's
   parser (timed on its own: live, frames arrive at Binance's pace), then go through the producer's
   sending path (its packer, gzip, ``SqsSink``) onto the queue, timed; then the ingest flow drains it,
   timed. End to end = trades / (send s + ingest s); the rate including parsing is printed too, and
   the candles are checked exact. The throughput workers run with ``receive_wait_s=0`` so the final
   "queue empty?" check does not add a one-second long poll to a drain that is otherwise continuous.
2. **baseline** - the same with one trade per message (``--baseline-trades``), sent and drained in
   rounds of ``--baseline-round`` messages: moto's SendMessage and ReceiveMessage cost grows with queue
   depth (it scans every message), so rounds keep the depth near the packed run's.
3. **latency** - the producer emits ``--rate`` trades/s with trade time = now for
   ``--latency-seconds`` while the flow runs continuously; a poller reads the candles every
   ``--poll-ms`` and times each trade until its candle counts it (p50/p99).
4. **rebuild** - one UTC day of BTCUSDT candles (1m, 1h, 1d) rebuilt from the lake by the
   ``backfill`` flow (``fetch_missing=False``) over ``--rebuild-trades`` synthetic trades written
   to the lake as the ingest writes them (``benchmarks.rebuild``): the first build, with no candles
   stored, then the idempotent re-run; each timed in a backfill worker with its own peak RSS, split
   into read lake / rebuild 1m / rollup / export from the Prefect API, and checked exact.

CPU seconds are reported next to wall seconds, and so is the CPU other processes took while a
phase was timed (``benchmarks.cpu``): on a shared machine the wall times are only as good as that.

Moto alone is then timed on the throughput run's load (the same SQS messages, objects of the same
sizes): the floor under the ingest time. Results print as a table and are written as JSON, with the
services' and workers' logs, under ``benchmarks/results/<run>/``. The exit status is 0 when the
benchmark ran, whether or not the targets were met (the table says), and 1 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import floors, load
from benchmarks import rebuild as rebuild_phase
from benchmarks.latency import latency
from benchmarks.pipeline import Stage, phase_settings, throughput
from benchmarks.report import render, verdicts
from benchmarks.stack import aws_env, moto_server, prefect_server, services_env
from tasks.settings import Settings

log = logging.getLogger(__name__)

PHASES = ("throughput", "baseline", "latency", "rebuild")
SYMBOLS = tuple(m.symbol for m in load.MARKETS)
HISTORY_START_MS = 1_723_161_000_000  # 2024-08-08T23:50:00Z: the run crosses an hour and a date
HISTORY_RATE = 1000.0  # trades per second of trade time, both symbols together
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class BenchOptions:
    trades: int = 1_000_000
    baseline_trades: int = 5_000
    baseline_round: int = 200
    latency_seconds: float = 60.0
    rate: float = 1000.0
    poll_ms: int = 100
    rebuild_trades: int = 1_000_000
    phases: tuple[str, ...] = PHASES
    seed: int = 1
    profile: bool = False
    results_dir: Path = RESULTS


def _positive_int(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _phases(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PHASES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"phases are {','.join(PHASES)}; got {text!r}")
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared by ``candleflow bench`` and ``python -m benchmarks.bench``)."""
    d = BenchOptions()
    parser.add_argument(
        "--trades",
        type=_positive_int,
        default=d.trades,
        help=f"trades in the throughput run (default {d.trades:,})",
    )
    parser.add_argument(
        "--baseline-trades",
        type=_positive_int,
        default=d.baseline_trades,
        help=f"trades in the one-per-message baseline (default {d.baseline_trades:,})",
    )
    parser.add_argument(
        "--baseline-round",
        type=_positive_int,
        default=d.baseline_round,
        help=f"baseline messages queued per round (default {d.baseline_round})",
    )
    parser.add_argument(
        "--latency-seconds",
        type=_positive_float,
        default=d.latency_seconds,
        help=f"length of the latency run (default {d.latency_seconds:g})",
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=d.rate,
        help=f"trades per second in the latency run (default {d.rate:g})",
    )
    parser.add_argument(
        "--poll-ms",
        type=_positive_int,
        default=d.poll_ms,
        help=f"DynamoDB poll interval of the latency run (default {d.poll_ms})",
    )
    parser.add_argument(
        "--rebuild-trades",
        type=_count,
        default=d.rebuild_trades,
        help=f"trades in the day of BTCUSDT the rebuild phase rebuilds from the lake "
        f"(default {d.rebuild_trades:,}; 0 skips the phase)",
    )
    parser.add_argument(
        "--phases",
        type=_phases,
        default=d.phases,
        help=f"comma-separated subset of {','.join(PHASES)} (default all; e.g. --phases rebuild "
        "runs the rebuild alone)",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the synthetic trades")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the throughput ingest and the rebuild runs (their own main thread; "
        "times are inflated); stats go to the run directory",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=d.results_dir,
        help="where run directories go (default benchmarks/results)",
    )


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        trades=args.trades,
        baseline_trades=args.baseline_trades,
        baseline_round=args.baseline_round,
        latency_seconds=args.latency_seconds,
        rate=args.rate,
        poll_ms=args.poll_ms,
        rebuild_trades=args.rebuild_trades,
        phases=args.phases,
        seed=args.seed,
        profile=args.profile,
        results_dir=args.results_dir,
    )


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Point this process's boto3 at the benchmark's moto server for the run, then restore."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(options: BenchOptions, settings: Settings) -> int:
    """Run the chosen phases, print the table, write the JSON; 0 when the benchmark ran."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = options.results_dir / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "options": {**asdict(options), "results_dir": str(options.results_dir)}
    }
    results["machine"] = _machine()
    results["settings"] = settings.model_dump(mode="json")
    try:
        with moto_server(workdir) as moto, prefect_server(workdir) as (prefect, home):
            log.info("moto at %s, Prefect API at %s; logs in %s", moto.url, prefect.url, workdir)
            env = services_env(moto.url, prefect.url, home)
            stage = Stage(env, workdir, frozenset({moto.pid, prefect.pid}))
            with _environ(aws_env(moto.url)):
                _phases_run(options, settings, stage, results, moto.pid)
    except Exception:
        log.exception("the benchmark could not finish; logs are in %s", workdir)
        return 1
    finally:
        shutil.rmtree(workdir / "prefect-home", ignore_errors=True)
    results["verdicts"] = verdicts(results)
    print(render(results))
    path = workdir / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults: {path}")
    return 0


def _phases_run(
    options: BenchOptions,
    settings: Settings,
    stage: Stage,
    results: dict[str, Any],
    moto_pid: int,
) -> None:
    if "throughput" in options.phases:
        log.info("generating %d synthetic trades", options.trades)
        frames = load.history(options.trades, HISTORY_START_MS, HISTORY_RATE, options.seed)
        log.info("throughput: parsing and sending %d trades, then ingesting them", options.trades)
        profile = stage.workdir / "ingest.prof" if options.profile else None
        packed, sent = throughput(
            stage,
            phase_settings(settings, "packed", SYMBOLS, receive_wait_s=0),
            frames,
            "packed",
            round_trades=len(frames),
            profile=profile,
        )
        del frames
        results["throughput"] = packed.summary()
        log.info("moto alone on the same load")
        floor = floors.measure(
            phase_settings(settings, "floor", SYMBOLS), sent.messages, packed.object_sizes
        )
        del sent
        results["floors"] = {**asdict(floor), "ingest_s": floor.ingest_s}
        if profile is not None:
            results["profile"] = _profile_top(profile, stage.workdir / "ingest-profile.txt")
    if "baseline" in options.phases:
        frames = load.history(options.baseline_trades, HISTORY_START_MS, HISTORY_RATE, options.seed)
        log.info("baseline: %d trades, one per message", options.baseline_trades)
        base, _ = throughput(
            stage,
            phase_settings(settings, "single", SYMBOLS, receive_wait_s=0),
            frames,
            "single",
            round_trades=options.baseline_round,
            one_per_message=True,
        )
        results["baseline"] = base.summary()
    if "latency" in options.phases:
        log.info("latency: %g trades/s for %g s", options.rate, options.latency_seconds)
        lat = latency(
            stage,
            phase_settings(settings, "latency", SYMBOLS),
            rate=options.rate,
            seconds=options.latency_seconds,
            poll_s=options.poll_ms / 1000,
            seed=options.seed,
        )
        results["latency"] = asdict(lat)
    if "rebuild" in options.phases and options.rebuild_trades:
        log.info("rebuild: one day of %d trades from the lake, twice", options.rebuild_trades)
        rebuilt = rebuild_phase.rebuild(
            stage,
            phase_settings(settings, "rebuild", [rebuild_phase.SYMBOL]),
            options.rebuild_trades,
            options.seed,
            moto_pid=moto_pid,
            profile=options.profile,
        )
        results["rebuild"] = rebuilt.summary()
        if options.profile:
            results["rebuild_profiles"] = [
                _profile_top(Path(r.profile), Path(r.profile).with_suffix(".txt"))
                for r in rebuilt.runs
                if r.profile
            ]


def _profile_top(stats_path: Path, text_path: Path, lines: int = 40) -> str:
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=out)
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    text_path.write_text(out.getvalue())
    return str(text_path)


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit or None,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench",
        description=(
            "Benchmark producer -> SQS -> ingest -> S3 + DynamoDB, and the rebuild of a day of "
            "candles from the lake, on a private moto server."
        ),
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "urllib3", "producer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return run(options_from(args), Settings())


if __name__ == "__main__":
    sys.exit(main())
