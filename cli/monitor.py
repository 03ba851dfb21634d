"""``candleflow monitor``: a live terminal dashboard of the pipeline.

Reads the queues, heartbeats, candles, gaps and alerts (``tasks.status.read_status``) and the
latest Prefect flow runs in a background thread every ``--interval`` seconds; the main thread
redraws the latest reads (``cli/monitor_view.py``) so ages tick and Ctrl-C, SIGTERM or ``q`` +
Enter quit at once. A failed read is shown in its panel; the monitor keeps going.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from types import FrameType
from urllib.parse import urlparse

from rich.console import Console
from rich.live import Live

from cli.monitor_view import (
    FLOW_RUNS_SHOWN,
    FlowRunRow,
    Snapshot,
    Target,
    dashboard,
    frame,
    measured_rates,
)
from infra.spec import resource_spec
from tasks.aws.clients import AwsClients
from tasks.errors import ResourceMissing
from tasks.settings import Settings
from tasks.status import PipelineStatus, read_status

ALERTS_READ = 6
UPCOMING_RUNS = 2  # scheduled or pending runs listed above the latest started ones
TICK_S = 0.5  # how often the screen is redrawn from the latest reads
PREFECT_TIMEOUT_S = 10.0
NO_PREFECT_API = (
    "no Prefect API configured: start the stack with ./scripts/start.sh and `. .candleflow/env`, "
    "or set PREFECT_API_URL"
)
JOIN_S = 0.5  # how long quitting waits for a read in progress (reads only: safe to drop)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "monitor",
        help="live dashboard: queues, producers, ingest, symbols, flow runs, alerts",
        description=(
            "Redraws the pipeline's state every --interval seconds until Ctrl-C, SIGTERM or "
            "q + Enter. --once prints one frame and exits (1 if the queues and tables cannot "
            "be read). Times are UTC."
        ),
    )
    p.add_argument(
        "--interval", type=_seconds, default=2.0, help="seconds between reads (default 2)"
    )
    p.add_argument("--once", action="store_true", help="print one frame to stdout and exit")
    p.add_argument("--frames", type=_count, help="exit after this many reads")
    p.set_defaults(func=run_cli)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"the interval must be 0.1 to 3600 s, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Sources:
    """What the monitor reads: the stores named by the settings, through one set of clients."""

    settings: Settings
    clients: AwsClients

    @property
    def target(self) -> Target:
        return Target(
            self.settings.prefix,
            self.clients.region,
            endpoint_label(self.clients.sqs.meta.endpoint_url),
        )

    def status(self, at_ms: int) -> PipelineStatus:
        spec = resource_spec(self.settings)
        return read_status(self.clients, spec, self.settings.symbols, at_ms, alerts=ALERTS_READ)


def endpoint_label(url: str) -> str:
    """The endpoint clients talk to; "AWS" for the services' own."""
    host = urlparse(url).hostname or ""
    return "AWS" if host.endswith((".amazonaws.com", ".amazonaws.com.cn")) else url


def store_error(exc: Exception, target: Target) -> str:
    """A failed read of the stores, saying which setting to look at."""
    if isinstance(exc, ResourceMissing):
        hint = f"is CANDLEFLOW_PREFIX={target.prefix} right, and AWS_ENDPOINT_URL the stack's?"
    else:
        hint = (
            "check AWS_ENDPOINT_URL (the embedded stack: `. .candleflow/env`), AWS_REGION "
            "and the AWS credentials"
        )
    return f"cannot read the queues and tables at {target.endpoint}: {exc} ({hint})"


def refresh_status(snapshot: Snapshot, sources: Sources, at_ms: int) -> Snapshot:
    try:
        status = sources.status(at_ms)
    except Exception as exc:  # any failure (network, credentials, AWS) is shown, not fatal
        return replace(snapshot, status_error=store_error(exc, sources.target))
    before = snapshot.status.producers if snapshot.status else []
    return replace(
        snapshot,
        status=status,
        status_ms=at_ms,
        status_error=None,
        rates=measured_rates(before, status.producers, snapshot.rates),
    )


def prefect_api_url() -> str | None:
    """The Prefect API the client would use (PREFECT_API_URL or the active profile)."""
    from prefect.settings import PREFECT_API_URL  # lazily: importing prefect takes seconds

    url = PREFECT_API_URL.value()
    return str(url) if url else None


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def read_flow_runs(limit: int = FLOW_RUNS_SHOWN) -> tuple[FlowRunRow, ...]:
    """The next scheduled runs, then the latest started ones, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    waiting = FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
    )
    # A new client per read: a started client retries refused connections for a long while.
    with get_client(httpx_settings={"timeout": PREFECT_TIMEOUT_S}, sync_client=True) as client:
        upcoming = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=waiting),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=UPCOMING_RUNS,
        )
        started = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
        runs = [*upcoming, *started]
        ids = list({r.flow_id for r in runs})
        flows = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=ids))) if ids else []
    names = {f.id: f.name for f in flows}
    return tuple(
        FlowRunRow(
            flow=names.get(r.flow_id, str(r.flow_id)),
            name=r.name,
            state=r.state_name or "",
            state_type=r.state_type.value if r.state_type else "",
            start_ms=_ms(r.start_time),
            end_ms=_ms(r.end_time),
            expected_ms=_ms(r.expected_start_time),
            message=r.state.message if r.state else None,
        )
        for r in runs
    )


def runs_error(exc: Exception, api_url: str | None) -> str:
    import httpx  # a dependency of prefect's client, loaded by it already

    if api_url is not None and isinstance(exc, httpx.TransportError):
        return (
            f"Prefect API at {api_url} unreachable: start it with ./scripts/start.sh "
            "or set PREFECT_API_URL"
        )
    return f"reading flow runs from {api_url or 'Prefect'} failed: {type(exc).__name__}: {exc}"


def refresh_runs(snapshot: Snapshot) -> Snapshot:
    api_url = None
    try:
        api_url = prefect_api_url()
        if api_url is None:  # never let the client start a throwaway server of its own
            return replace(snapshot, prefect_api=None, runs_error=NO_PREFECT_API)
        runs = read_flow_runs()
    except Exception as exc:  # shown in the panel; the rest of the monitor keeps going
        return replace(snapshot, prefect_api=api_url, runs_error=runs_error(exc, api_url))
    return replace(snapshot, prefect_api=api_url, runs=runs, runs_error=None)


def show_once(sources: Sources, console: Console) -> int:
    """Print one frame; 1 if the stores could not be read at all (the reason goes to stderr)."""
    snapshot = refresh_runs(refresh_status(Snapshot(), sources, now_ms()))
    console.print(frame(sources.target, snapshot, now_ms()))
    if snapshot.status is None:
        print(f"candleflow monitor: {snapshot.status_error}", file=sys.stderr)
        return 1
    return 0


class Poller(threading.Thread):
    """Reads the stores and Prefect every ``interval_s`` until ``stop`` is set."""

    def __init__(self, sources: Sources, interval_s: float, stop: threading.Event) -> None:
        super().__init__(name="monitor-reads", daemon=True)  # a hung read must not block exit
        self.sources = sources
        self.interval_s = interval_s
        self.stop = stop
        self.snapshot = Snapshot()  # replaced whole, so the drawing thread sees a consistent one
        self.reads = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.snapshot = refresh_status(self.snapshot, self.sources, now_ms())
            self.snapshot = refresh_runs(self.snapshot)
            self.reads += 1
            self.stop.wait(self.interval_s)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the monitor through ``stop``, so the terminal is restored."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def quit_on_q(stop: threading.Event) -> None:
    """On a terminal, ``q`` + Enter quits too."""
    if not sys.stdin.isatty():
        return

    def watch() -> None:
        fd = sys.stdin.fileno()
        while chunk := os.read(fd, 1024):  # unbuffered: nothing to lock at interpreter exit
            if chunk.strip().lower() in (b"q", b"quit"):
                stop.set()
                return

    threading.Thread(target=watch, name="monitor-keys", daemon=True).start()


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Warnings would scroll through the full-screen view; the panels show failed reads."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def draw(
    poller: Poller,
    stop: threading.Event,
    frames: int | None,
    show: Callable[[Snapshot], None],
    *,
    every_tick: bool,
) -> None:
    """Show the latest reads every tick (or after each new read) until stopped or done."""
    shown = -1
    while True:
        reads = poller.reads
        if every_tick or (reads != shown and reads > 0):
            show(poller.snapshot)
            shown = reads
        if (frames is not None and reads >= frames) or stop.wait(TICK_S):
            return


def full_screen(
    poller: Poller, stop: threading.Event, frames: int | None, console: Console, target: Target
) -> None:
    """The dashboard on the terminal's alternate screen, restored on the way out."""
    quit_on_q(stop)
    live = Live(console=console, screen=True, auto_refresh=False, redirect_stderr=False)

    def show(snapshot: Snapshot) -> None:
        live.update(dashboard(target, snapshot, now_ms()), refresh=True)

    with quiet_logging(), live:
        draw(poller, stop, frames, show, every_tick=True)
    if frames is not None and not stop.is_set():  # done, not quit: leave the last frame
        console.print(frame(target, poller.snapshot, now_ms()))


def run_live(sources: Sources, interval_s: float, frames: int | None, console: Console) -> int:
    stop = threading.Event()
    poller = Poller(sources, interval_s, stop)
    target = sources.target

    def stacked(snapshot: Snapshot) -> None:
        console.print(frame(target, snapshot, now_ms()))

    with stop_on_signals(stop):
        poller.start()
        if console.is_terminal:
            full_screen(poller, stop, frames, console, target)
        else:  # a pipe or a file: one stacked frame per read
            draw(poller, stop, frames, stacked, every_tick=False)
        stop.set()
        poller.join(JOIN_S)
    return 0


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    sources = Sources(settings, AwsClients())
    console = Console()
    if args.once:
        return show_once(sources, console)
    return run_live(sources, args.interval, args.frames, console)
