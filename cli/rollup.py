"""``candleflow rollup``: run the rollup flow here, the same flow the schedules run."""

from __future__ import annotations

import argparse

from tasks.core.keys import parse_iso
from tasks.settings import Settings


def _iso(text: str) -> str:
    """Check an ISO-8601 time at parse time; the flow gets the text as given."""
    try:
        parse_iso(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO-8601 (e.g. 2024-08-08T23:00:00Z)"
        ) from None
    return text


def _symbols(text: str) -> list[str]:
    return [s.strip().upper() for s in text.split(",") if s.strip()]


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
    p.add_argument("--start", type=_iso, help="first time to re-roll, ISO-8601 (UTC if no zone)")
    p.add_argument("--end", type=_iso, help="last time to re-roll, ISO-8601 (default: now)")
    p.add_argument(
        "--symbols", type=_symbols, help="comma-separated, e.g. BTCUSDT,ETHUSDT (default: all)"
    )
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    from flows.rollup_candles import rollup_candles

    report = rollup_candles(args.interval, args.start, args.end, args.symbols)
    print(f"rollup {args.interval}: {report.summary()}")
    return 0
