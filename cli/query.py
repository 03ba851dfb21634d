"""``candleflow query "SQL"``: SQL over the lake's Glue tables (``trades``, ``candles``).

Runs on Athena on AWS and on the local engine (polars SQL over the same Parquet in S3) elsewhere;
``CANDLEFLOW_QUERY_ENGINE`` overrides the choice. Both print the same text for the same query.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from infra.spec import resource_spec
from tasks.aws.clients import AwsClients
from tasks.core.sql import QueryResult
from tasks.query import run_sql
from tasks.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="run SQL over the lake (tables trades, candles) on Athena or the local engine",
        description=(
            "Tables: trades (partitions symbol, date, hour) and candles (partitions interval, "
            'symbol, date), e.g. SELECT symbol, count(*) FROM trades WHERE "date" = '
            "'2024-08-08' GROUP BY symbol. Quote the column date as \"date\" (a keyword on Athena)."
        ),
    )
    p.add_argument("sql", help="one SQL statement")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    result = run_sql(settings, resource_spec(settings), AwsClients(), args.sql)
    if args.format == "json":
        json.dump(result.records(), sys.stdout, indent=1)
        print()
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([["" if v is None else v for v in row] for row in result.rows])
    else:
        _print_table(result)
    return 0


def _print_table(result: QueryResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(result.rows)} row(s) ({result.engine})")
    for name in result.columns:
        table.add_column(name)
    for row in result.rows:
        table.add_row(*("NULL" if v is None else v for v in row))
    Console().print(table)
