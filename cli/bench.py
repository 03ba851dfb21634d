"""``candleflow bench``: measure the pipeline end to end on a private moto server (``benchmarks``)."""

from __future__ import annotations

import argparse

from tasks.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` subcommand; the main CLI calls ``args.func(args, settings)``."""
    from benchmarks.bench import add_arguments

    parser = subparsers.add_parser(
        "bench",
        help="benchmark throughput, latency and memory of producer -> SQS -> ingest",
        description=(
            "Replay synthetic Binance trades through the producer, SQS, the ingest flow, S3 and "
            "DynamoDB on a moto server and a Prefect server of its own; print throughput (and a "
            "one-trade-per-message baseline), latency p50/p99, the ingest process's peak RSS and "
            "the time to rebuild one day of candles from the lake (backfill), against their "
            "targets. --phases picks phases. Results and logs go to benchmarks/results/."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmark with the parsed options; ``settings`` tune the pipeline under test."""
    from benchmarks.bench import options_from, run

    return run(options_from(args), settings)
