"""``candleflow ingest``: run the ingest flow here, the same flow the schedule runs."""

from __future__ import annotations

import argparse

from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingest", help="drain the trades queue into the lake and the candles table")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--once", action="store_true", help="drain until the queue is empty, then exit"
    )
    mode.add_argument(
        "--max-seconds",
        type=float,
        help="keep polling this long, even while the queue is empty",
    )
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    from flows.ingest_trades import ingest_trades

    if args.max_seconds is not None:
        report = ingest_trades(max_seconds=args.max_seconds, until_empty=False)
    else:
        report = ingest_trades(until_empty=True)
    print(f"ingest: {report.summary()}")
    for reason, count in sorted(report.reject_reasons.items()):
        print(f"  rejected {count:>7}  {reason}")
    return 0
