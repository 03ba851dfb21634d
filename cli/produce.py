"""``candleflow produce``: stream trades from Binance (or replay captures) into the SQS trades queue."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cli.args import speed_arg
from infra.spec import resource_spec
from producer.main import run
from producer.sources import BinanceSource, ReplaySource, Source
from producer.stream import StreamConnectError
from tasks.aws.clients import AwsClients
from tasks.aws.sqs import queue_url
from tasks.errors import CandleflowError
from tasks.settings import Settings

log = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``produce`` subcommand; the main CLI calls ``args.func(args, settings)``."""
    parser = subparsers.add_parser(
        "produce",
        help="stream trades from Binance or capture files into the SQS trades queue",
        description=(
            "Stream trades into the SQS trades queue until interrupted (Ctrl-C / SIGTERM send the "
            "buffered trades first). Replay sends capture files (data/binance-ws/*.gz) instead."
        ),
    )
    parser.add_argument(
        "--source",
        choices=("binance", "replay"),
        default="binance",
        help="live Binance websocket (default) or replay of capture FILEs",
    )
    parser.add_argument(
        "--symbols",
        type=_symbols,
        default=None,
        help="comma-separated Binance symbols, e.g. BTCUSDT,ETHUSDT (default: CANDLEFLOW_SYMBOLS)",
    )
    parser.add_argument(
        "--speed",
        type=speed_arg,
        default=1.0,
        help="replay speed: N times the recorded pace, or 'max' for no pauses (default 1)",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="capture files to replay (gzip)",
    )
    parser.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """Run the producer as the parsed arguments say; prints a one-line summary; returns the exit code."""
    symbols: list[str] = args.symbols or list(settings.symbols)
    source = _source(args, settings, symbols)
    if source is None:
        return EXIT_USAGE
    clients = AwsClients()
    name = resource_spec(settings).queue.name
    try:
        url = queue_url(clients.sqs, name)
    except CandleflowError as exc:
        log.error("cannot find the trades queue %s: %s", name, exc)
        return EXIT_FAILED
    try:
        stats = run(settings, source, clients, url)
    except StreamConnectError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except CandleflowError as exc:
        log.error("producer stopped: %s", exc)
        return EXIT_FAILED
    print(
        f"produced {stats.trades} trades in {stats.messages} messages "
        f"({stats.bytes} bytes); dropped {stats.dropped}, malformed {stats.malformed}"
    )
    return 0


def _source(args: argparse.Namespace, settings: Settings, symbols: list[str]) -> Source | None:
    files: list[Path] = args.files
    if args.source == "binance":
        if files:
            log.error("--source binance takes no FILE arguments (did you mean --source replay?)")
            return None
        return BinanceSource(settings, symbols)
    if not files:
        log.error("--source replay needs at least one capture FILE, e.g. data/binance-ws/*.gz")
        return None
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        log.error("capture files not found: %s", ", ".join(missing))
        return None
    return ReplaySource(files, args.speed, symbols=symbols)


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols or not all(s.isalnum() for s in symbols):
        raise argparse.ArgumentTypeError(f"expected symbols like BTCUSDT,ETHUSDT, got {text!r}")
    return symbols
