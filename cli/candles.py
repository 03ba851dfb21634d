"""``candleflow candles``: read candles from DynamoDB as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from infra.spec import resource_spec
from tasks.aws import dynamodb, gap_records
from tasks.aws.clients import AwsClients
from tasks.core.gaps import is_incomplete
from tasks.core.keys import iso_millis, parse_iso
from tasks.core.models import KLINE_FIELDS, Candle, Interval
from tasks.settings import Settings

COLUMNS = ["open_time", *KLINE_FIELDS, "close_time", "complete"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("candles", help="show candles of a symbol from DynamoDB")
    p.add_argument("symbol", type=str.upper, help="e.g. BTCUSDT")
    p.add_argument("--interval", type=Interval.parse, default=Interval.M1, help="1m, 1h or 1d")
    p.add_argument("--start", type=parse_iso, help="first open time, ISO-8601 (UTC if no zone)")
    p.add_argument("--end", type=parse_iso, help="last open time, ISO-8601 (UTC if no zone)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--limit", type=int, default=None, help="at most this many candles")
    p.set_defaults(func=run_cli)


def row(candle: Candle, complete: bool = True) -> dict[str, str]:
    """Kline fields as text; ``complete`` is false while an open gap overlaps the candle."""
    out = {"complete": "true" if complete else "false"}
    for name in COLUMNS[:-1]:
        value = getattr(candle, name)
        if name in ("open_time", "close_time"):
            out[name] = iso_millis(value)
        elif value is None:
            out[name] = ""
        else:
            out[name] = format(value, "f") if not isinstance(value, int) else str(value)
    return out


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    table = resource_spec(settings).table.name
    client = AwsClients().dynamodb
    candles = list(
        dynamodb.query_candles(
            client,
            table,
            args.symbol,
            args.interval,
            args.start,
            args.end,
            limit=args.limit,
        )
    )
    gaps = [r.gap for r in gap_records.records(client, table, args.symbol, open_only=True)]
    rows = [row(c, not is_incomplete(c, gaps)) for c in candles]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{args.symbol} {args.interval.value} candles ({len(rows)})")
        shown = ["open_time", "open", "high", "low", "close", "volume", "trade_count", "complete"]
        for name in shown:
            t.add_column(name, justify="left" if name == "open_time" else "right")
        for r in rows:
            t.add_row(*(r[n] for n in shown))
        Console().print(t)
        if not rows:
            print(
                f"no {args.interval.value} candles for {args.symbol} in table {table}",
                file=sys.stderr,
            )
    return 0
