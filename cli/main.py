"""Entry point of the ``candleflow`` command. Settings are read here, once, and passed down."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from pydantic import ValidationError

from tasks.errors import CandleflowError
from tasks.settings import Settings

# The commands that run flows in this process: their runs carry the tag the unresponsive-run
# automation watches (deployments/automations.py), as the deployments' runs do.
FLOW_COMMANDS = frozenset({"ingest", "rollup", "gaps", "backfill"})


def build_parser() -> argparse.ArgumentParser:
    from cli import (
        alerts,
        api,
        aws,
        backfill,
        bench,
        candles,
        gaps,
        ingest,
        monitor,
        produce,
        query,
        rollup,
        sample,
        stack,
    )

    parser = argparse.ArgumentParser(
        prog="candleflow",
        description="Exact crypto candles from Binance trade streams, on AWS or an embedded emulator.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    aws.register(sub)
    produce.register(sub)
    sample.register(sub)
    ingest.register(sub)
    candles.register(sub)
    rollup.register(sub)
    gaps.register(sub)
    backfill.register(sub)
    alerts.register(sub)
    query.register(sub)
    api.register(sub)
    monitor.register(sub)
    stack.register(sub)
    bench.register(sub)
    return parser


def _run_tags(command: str) -> AbstractContextManager[object]:
    """The tag of the flow runs ``command`` starts (none for the others: no prefect import)."""
    if command not in FLOW_COMMANDS:
        return nullcontext()
    from prefect import tags

    from deployments.automations import TAG

    return tags(TAG)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "urllib3", "werkzeug", "httpx", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"candleflow: invalid setting: {exc}", file=sys.stderr)
        return 2
    try:
        with _run_tags(args.command):
            return int(args.func(args, settings))
    except CandleflowError as exc:
        print(f"candleflow {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
