"""``candleflow gaps``: the recorded gaps in the trade ids, optionally after a fresh detect-gaps run."""

from __future__ import annotations

import argparse
import json
import sys

from cli.args import symbols_arg
from infra.spec import resource_spec
from tasks.aws import gap_records
from tasks.aws.clients import AwsClients
from tasks.core.gaps import GapRecord
from tasks.core.keys import iso_millis
from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "gaps",
        help="list the gaps in the trade ids (missing trades) and their time windows",
        description=(
            "Gaps are found by the detect-gaps flow (scheduled every minute by `candleflow up`); "
            "--detect runs it here first. Candles overlapping an open gap are incomplete."
        ),
    )
    p.add_argument("--symbols", type=symbols_arg, help="comma-separated (default: all)")
    p.add_argument("--all", action="store_true", help="include filled gaps")
    p.add_argument("--detect", action="store_true", help="run the detect-gaps flow first")
    p.add_argument(
        "--fill",
        action="store_true",
        help="with --detect: backfill the open gaps from Binance (default: CANDLEFLOW_AUTO_FILL_GAPS "
        "is not applied by this command)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=run_cli)


def as_dict(r: GapRecord) -> dict[str, object]:
    g = r.gap
    return {
        "symbol": g.symbol,
        "first_id": g.first_id,
        "last_id": g.last_id,
        "missing": g.size,
        "start": iso_millis(g.start_ms),
        "end": iso_millis(g.end_ms),
        "state": "open" if r.is_open else "filled",
        "detected": iso_millis(r.detected_ms),
        "filled": iso_millis(r.filled_ms) if r.filled_ms is not None else None,
    }


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    symbols = args.symbols or settings.symbols
    if args.detect:
        from flows.detect_gaps import detect_gaps

        report = detect_gaps(symbols, fill=args.fill)
        print(f"detect-gaps: {report.summary()}", file=sys.stderr)
    table = resource_spec(settings).table.name
    client = AwsClients().dynamodb
    found = [
        r for s in symbols for r in gap_records.records(client, table, s, open_only=not args.all)
    ]
    rows = [as_dict(r) for r in found]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{'all' if args.all else 'open'} gaps ({len(rows)})")
    for name in ("symbol", "first_id", "last_id", "missing", "start", "end", "state"):
        t.add_column(
            name, justify="right" if name in ("first_id", "last_id", "missing") else "left"
        )
    for r in rows:
        t.add_row(
            *(
                str(r[n])
                for n in ("symbol", "first_id", "last_id", "missing", "start", "end", "state")
            )
        )
    Console().print(t)
    return 0
