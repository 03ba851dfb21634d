"""``candleflow rollup``: run the rollup flow here, the same flow the schedules run."""

from __future__ import annotations

import argparse

from cli.args import iso_arg, symbols_arg
from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rollup",
        help="recompute 1h or 1d candles from the finer stored candles",
        description=(
            "Without --start: the trailing window (CANDLEFLOW_ROLLUP_LOOKBACK_HOURS/_DAYS) and every "
            "dirty parent. With --start: exactly the intervals overlapping --start..--end."
        ),
    )
    p.add_argument("--interval", choices=("1h", "1d"), default="1h", help="level to roll up")
    p.add_argument("--start", type=iso_arg, help="first time to re-roll, ISO-8601 (UTC if no zone)")
    p.add_argument("--end", type=iso_arg, help="last time to re-roll, ISO-8601 (default: now)")
    p.add_argument(
        "--symbols", type=symbols_arg, help="comma-separated, e.g. BTCUSDT,ETHUSDT (default: all)"
    )
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    from flows.rollup_candles import rollup_candles

    report = rollup_candles(args.interval, args.start, args.end, args.symbols)
    print(f"rollup {args.interval}: {report.summary()}")
    return 0
