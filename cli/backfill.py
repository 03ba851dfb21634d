"""``candleflow backfill``: run the backfill flow here, the same flow the backfill deployment runs."""

from __future__ import annotations

import argparse

from cli.args import iso_arg, symbols_arg
from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backfill",
        help="rebuild 1m/1h/1d candles of a window from the lake, fetching gaps from Binance",
        description=(
            "Fetches the trades of the open gaps in the window from Binance REST (rate-limited), "
            "writes them to the lake, rebuilds the window's 1m candles from the lake, and rolls "
            "its 1h and 1d candles up again. Idempotent."
        ),
    )
    p.add_argument("--start", type=iso_arg, required=True, help="ISO-8601 (UTC if no zone)")
    p.add_argument("--end", type=iso_arg, help="ISO-8601 (default: now)")
    p.add_argument("--symbols", type=symbols_arg, help="comma-separated (default: all)")
    p.add_argument(
        "--no-fetch",
        dest="fetch_missing",
        action="store_false",
        help="rebuild from the lake only; do not call Binance",
    )
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    from flows.backfill import backfill

    report = backfill(args.start, args.end, args.symbols, args.fetch_missing)
    print(report.summary())
    return 1 if report.still_open else 0
