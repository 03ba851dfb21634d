"""``candleflow sample``: sample order-book spreads of Binance and BTCMarkets into the SQS queue."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cli.args import speed_arg
from infra.spec import resource_spec
from producer.spreads import run
from producer.stream import StreamConnectError
from tasks.aws.clients import AwsClients
from tasks.aws.sqs import queue_url
from tasks.errors import CandleflowError
from tasks.settings import Settings

log = logging.getLogger(__name__)

EXIT_FAILED = 1


def samples_queue_name(settings: Settings) -> str:
    return resource_spec(settings).samples_queue.name


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sample`` subcommand; the main CLI calls ``args.func(args, settings)``."""
    parser = subparsers.add_parser(
        "sample",
        help="sample order-book spreads (Binance, BTCMarkets) into the SQS spread-samples queue",
        description=(
            "Keep Binance order books from depth streams and poll BTCMarkets' books; every "
            "CANDLEFLOW_SPREAD_SAMPLE_INTERVAL_S seconds send one spread sample per market to the "
            "<prefix>-spread-samples queue. Runs until Ctrl-C / SIGTERM (the samples taken are "
            "sent first) or for --seconds."
        ),
    )
    parser.add_argument(
        "--seconds",
        type=_seconds,
        default=None,
        metavar="N",
        help="stop after N seconds (default: run until interrupted)",
    )
    parser.add_argument(
        "--replay",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="sample Binance books replayed from capture files (data/binance-ws) instead of live; "
        "BTCMarkets is not polled then",
    )
    parser.add_argument(
        "--speed",
        type=speed_arg,
        default=None,
        help="replay pace, x real time, or 'max' (default: max)",
    )
    parser.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """Run the sampler; prints a one-line summary; returns the exit code."""
    clients = AwsClients()
    name = samples_queue_name(settings)
    try:
        url = queue_url(clients.sqs, name)
    except CandleflowError as exc:
        log.error("cannot find the spread samples queue %s: %s", name, exc)
        return EXIT_FAILED
    try:
        stats = run(
            settings, clients, url, seconds=args.seconds, replay=args.replay, speed=args.speed
        )
    except StreamConnectError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except CandleflowError as exc:
        log.error("sampler stopped: %s", exc)
        return EXIT_FAILED
    print(
        f"sampled {stats.samples} spreads ({stats.thin} thin) in {stats.ticks} ticks, "
        f"{stats.messages} messages; {stats.missing} market-ticks without a book, "
        f"{stats.resyncs} resyncs, dropped {stats.dropped}"
    )
    return 0


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"seconds must be positive, got {text!r}")
    return seconds
