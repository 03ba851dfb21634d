"""What ``candleflow monitor`` draws: data in, rich renderables out.

No I/O and no clock: the shell (``cli/monitor.py``) reads the stores and Prefect into a
``Snapshot`` and passes the time to render at, so ages tick between reads and every frame can be
rendered again from the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tasks.core.heartbeat import ProducerBeat
from tasks.core.keys import utc

if TYPE_CHECKING:
    from tasks.status import PipelineStatus

FLOW_RUNS_SHOWN = 8
ALERTS_SHOWN = 6
LAGGING_S = 120.0  # a symbol whose newest stored trade is older than this is shown in yellow
STATE_STYLES = {
    "COMPLETED": "green",
    "RUNNING": "blue",
    "FAILED": "bold red",
    "CRASHED": "bold red",
    "CANCELLED": "yellow",
    "CANCELLING": "yellow",
    "PAUSED": "yellow",
    "SCHEDULED": "dim",
    "PENDING": "dim",
}
FAILED_STATES = frozenset({"FAILED", "CRASHED"})
_UNITS = (("y", 365.25 * 86_400), ("d", 86_400.0), ("h", 3_600.0), ("min", 60.0))


@dataclass(frozen=True, slots=True)
class Target:
    """Where the monitor looks: the deployment's name prefix, AWS region and endpoint."""

    prefix: str
    region: str
    endpoint: str  # a URL, or "AWS" for the service's own endpoints


@dataclass(frozen=True, slots=True)
class FlowRunRow:
    flow: str
    name: str
    state: str  # Prefect's state name: "Completed", "Late", "Running", ...
    state_type: str  # its StateType: COMPLETED, SCHEDULED, RUNNING, ...
    start_ms: int | None  # None until it runs
    end_ms: int | None
    expected_ms: int | None  # when it is (was) scheduled to start
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest reads. A failed read keeps the previous value and sets its error."""

    status: PipelineStatus | None = None
    status_ms: int | None = None  # when ``status`` was read
    status_error: str | None = None
    runs: tuple[FlowRunRow, ...] | None = None
    runs_error: str | None = None
    prefect_api: str | None = None  # the API the runs were read from (known after the first read)
    rates: Mapping[str, float] = field(default_factory=dict)  # producer -> measured trades/s


def measured_rates(
    before: Sequence[ProducerBeat], after: Sequence[ProducerBeat], known: Mapping[str, float]
) -> dict[str, float]:
    """Trades/s per producer from the change in ``seq`` between two reads of its beat.

    A beat that has not moved keeps the rate measured before; a producer restarted (its count went
    back) has none until its next beat.
    """
    previous = {b.producer: b for b in before}
    rates: dict[str, float] = {}
    for beat in after:
        prior = previous.get(beat.producer)
        if prior is None:
            continue
        if beat.sent_ms > prior.sent_ms and beat.seq >= prior.seq:
            rates[beat.producer] = (beat.seq - prior.seq) * 1000 / (beat.sent_ms - prior.sent_ms)
        elif beat.sent_ms == prior.sent_ms and beat.producer in known:
            rates[beat.producer] = known[beat.producer]
    return rates


def human_seconds(seconds: float) -> str:
    """A duration read at a glance: ``350 ms``, ``1.5 s``, ``42 s``, ``4.2 min``, ``2.3 y``."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.0f} ms"
    for unit, size in _UNITS:
        if s >= size:
            return f"{sign}{s / size:.1f} {unit}"
    if s < 10:
        return f"{sign}{s:.1f}".removesuffix(".0") + " s"
    return f"{sign}{s:.0f} s"


def clock(ms: int) -> str:
    return utc(ms).strftime("%Y-%m-%d %H:%M:%S")


def _ago(now_ms: int, ms: int) -> str:
    return f"{human_seconds(max(0, now_ms - ms) / 1000)} ago"  # a writer's clock may run ahead


def _dash() -> Text:
    return Text("-", style="dim")


def _panel(title: str, body: RenderableType | None, error: str | None = None) -> Panel:
    """A panel; a failed read shows its error under the last good data (or alone)."""
    parts = [] if body is None else [body]
    if error is not None:
        parts.append(Text(error, style="bold red"))
    return Panel(Group(*parts), title=f"[b]{title}", title_align="left", border_style="cyan")


def _status_panel(
    title: str, snapshot: Snapshot, body: Callable[[PipelineStatus], RenderableType]
) -> Panel:
    """A panel drawn from the pipeline status; a failed read is named here, told in Problems."""
    note = None
    if snapshot.status_error is not None:
        shown = (
            f"showing the read of {clock(snapshot.status_ms)} UTC; " if snapshot.status_ms else ""
        )
        note = f"{shown}reading the stores failed: see Problems"
    if snapshot.status is None:
        return _panel(title, None if note else Text("reading…", style="dim"), note)
    return _panel(title, body(snapshot.status), note)


def problems(snapshot: Snapshot) -> list[str]:
    """The pipeline's own problems, failed reads, and flows whose latest run failed."""
    found = []
    if snapshot.status_error:
        found.append(snapshot.status_error)
    if snapshot.status is not None:
        found += snapshot.status.problems
    latest: dict[str, FlowRunRow] = {}
    for run in snapshot.runs or ():
        if run.start_ms is not None and run.flow not in latest:
            latest[run.flow] = run
    for run in latest.values():
        if run.state_type in FAILED_STATES:
            why = f": {run.message}" if run.message else ""
            found.append(f"the latest run of {run.flow} ({run.name}) is {run.state}{why}")
    return found


def overall(snapshot: Snapshot) -> str:
    if snapshot.status is None and snapshot.status_error is None:
        return "starting"
    return "degraded" if problems(snapshot) else "ok"


def header(target: Target, snapshot: Snapshot, now_ms: int) -> Panel:
    state = overall(snapshot)
    style = {"ok": "bold green", "degraded": "bold red"}.get(state, "dim")
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")  # one line, however narrow
    grid.add_column(justify="right", no_wrap=True)
    where = Text.assemble(
        "prefix ",
        (target.prefix, "bold"),
        "  region ",
        (target.region, "bold"),
        "  endpoint ",
        (target.endpoint, "bold"),
    )
    grid.add_row(where, Text.assemble(f"{clock(now_ms)} UTC  ", (state, style)))
    border = {"ok": "green", "degraded": "red"}.get(state, "dim")
    return Panel(grid, title="[b]candleflow monitor", title_align="left", border_style=border)


def _columns(*names: str, left: int = 1) -> Table:
    """A borderless table: the first ``left`` columns left-aligned, numbers right-aligned."""
    table = Table(expand=True, box=None, pad_edge=False)
    for i, name in enumerate(names):
        table.add_column(name, justify="left" if i < left else "right")
    return table


def _queues(status: PipelineStatus) -> Table:
    table = _columns("queue", "depth", "in flight", "DLQ", "oldest")
    for i, q in enumerate(status.queues):
        age = status.oldest_message_age_s if i == 0 else None  # CloudWatch's, trades queue only
        table.add_row(
            q.name,
            str(q.visible),
            str(q.in_flight),
            Text(str(q.dlq_visible), style="bold red" if q.dlq_visible else "green"),
            human_seconds(age) if age is not None else _dash(),
        )
    return table


def queues_panel(snapshot: Snapshot) -> Panel:
    return _status_panel("Queues", snapshot, _queues)


def _producers(status: PipelineStatus, rates: Mapping[str, float], now_ms: int) -> RenderableType:
    if not status.producers:
        return Text("no producer heard from in the last 10 minutes", style="yellow")
    table = _columns("producer", "trades/s", "measured/s", "sent", "lag", "last seen")
    for beat in status.producers:
        measured = rates.get(beat.producer)
        table.add_row(
            beat.producer,
            f"{beat.rate:,.1f}" if beat.rate is not None else _dash(),
            f"{measured:,.1f}" if measured is not None else _dash(),
            f"{beat.seq:,}",
            human_seconds(beat.lag_ms / 1000),
            _ago(now_ms, beat.sent_ms),
        )
    return table


def producers_panel(snapshot: Snapshot, now_ms: int) -> Panel:
    return _status_panel(
        "Producers", snapshot, lambda status: _producers(status, snapshot.rates, now_ms)
    )


def _ingest(status: PipelineStatus, now_ms: int) -> RenderableType:
    beat = status.ingest
    if beat is None:
        return Text("no ingest batch recorded yet", style="yellow")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(justify="right")
    grid.add_row("last batch", _ago(now_ms, beat.updated_ms))
    grid.add_row("messages", f"{beat.messages:,}")
    grid.add_row("trades", f"{beat.trades:,}")
    grid.add_row("took", human_seconds(beat.seconds))
    grid.add_row("waited", human_seconds(beat.wait_ms / 1000))
    return grid


def ingest_panel(snapshot: Snapshot, now_ms: int) -> Panel:
    return _status_panel("Ingest", snapshot, lambda status: _ingest(status, now_ms))


def _lag(lag_s: float | None) -> Text:
    if lag_s is None:
        return _dash()
    return Text(human_seconds(lag_s), style="yellow" if lag_s > LAGGING_S else "green")


def _symbols(status: PipelineStatus, now_ms: int) -> Table:
    table = _columns("symbol", "last candle", "lag", "open gaps", "missing trades", left=3)
    for s in status.symbols:
        lag_s = None if s.last_trade_ms is None else max(0.0, (now_ms - s.last_trade_ms) / 1000)
        gap_style = "bold red" if s.open_gaps else "green"
        table.add_row(
            s.symbol,
            s.last_candle or _dash(),
            _lag(lag_s),
            Text(str(s.open_gaps), style=gap_style),
            Text(f"{s.missing_trades:,}", style=gap_style),
        )
    return table


def symbols_panel(snapshot: Snapshot, now_ms: int) -> Panel:
    return _status_panel("Symbols", snapshot, lambda status: _symbols(status, now_ms))


def _duration(run: FlowRunRow, now_ms: int) -> str:
    if run.start_ms is None:
        return ""
    if run.end_ms is not None:
        return human_seconds((run.end_ms - run.start_ms) / 1000)
    if run.state_type == "RUNNING":
        return human_seconds((now_ms - run.start_ms) / 1000)
    return ""


def _start(run: FlowRunRow) -> Text:
    if run.start_ms is not None:
        return Text(clock(run.start_ms))
    if run.expected_ms is not None:
        return Text(clock(run.expected_ms), style="dim")  # when it is due
    return _dash()


def _runs(runs: Sequence[FlowRunRow], now_ms: int) -> RenderableType:
    if not runs:
        return Text("no flow runs yet", style="dim")
    table = _columns("flow", "run", "state", "start", "duration", left=4)
    for run in runs:
        table.add_row(
            run.flow,
            run.name,
            Text(run.state, style=STATE_STYLES.get(run.state_type, "")),
            _start(run),
            _duration(run, now_ms),
        )
    return table


def flow_runs_panel(snapshot: Snapshot, now_ms: int) -> Panel:
    title = f"Flow runs ({snapshot.prefect_api})" if snapshot.prefect_api else "Flow runs"
    if snapshot.runs is None:
        waiting = None if snapshot.runs_error else Text("reading…", style="dim")
        return _panel(title, waiting, snapshot.runs_error)
    return _panel(title, _runs(snapshot.runs, now_ms), snapshot.runs_error)


def _alerts(status: PipelineStatus) -> RenderableType:
    if not status.alerts:
        return Text("no alerts", style="green")
    table = Table(expand=True, box=None, pad_edge=False, show_header=False)
    table.add_column("minute", no_wrap=True)
    table.add_column("level")
    table.add_column("subject", ratio=1)
    for a in status.alerts[:ALERTS_SHOWN]:
        cleared = a.kind == "cleared"
        level = "cleared" if cleared else a.severity.upper()
        style = "green" if cleared else ("bold red" if a.severity == "critical" else "yellow")
        table.add_row(a.minute, Text(level, style=style), a.subject)
    return table


def alerts_panel(snapshot: Snapshot) -> Panel:
    return _status_panel("Alerts", snapshot, _alerts)


def problems_panel(snapshot: Snapshot) -> Panel:
    found = problems(snapshot)
    if not found:
        body: RenderableType = Text("none", style="green")
    else:
        body = Group(*(Text(f"• {p}", style="bold red") for p in found))
    return Panel(
        body, title="[b]Problems", title_align="left", border_style="red" if found else "green"
    )


def _height(rows: int) -> int:
    return rows + 3  # borders and column headers


def dashboard(target: Target, snapshot: Snapshot, now_ms: int) -> Layout:
    """The full-screen layout ``Live`` shows."""
    status = snapshot.status
    layout = Layout()
    note = 1 if snapshot.status_error else 0  # the line saying the last read failed
    producers = len(status.producers) if status else 0
    symbols = len(status.symbols) if status else 0
    runs = len(snapshot.runs or ()) + (2 if snapshot.runs_error else 0)
    layout.split_column(
        Layout(header(target, snapshot, now_ms), size=3),
        Layout(name="top", size=max(_height(4), _height(producers)) + note),
        Layout(name="middle", size=max(_height(symbols) + note, _height(runs), 6)),
        Layout(name="bottom"),
    )
    layout["top"].split_row(
        Layout(queues_panel(snapshot), ratio=2),
        Layout(producers_panel(snapshot, now_ms), ratio=3),
        Layout(ingest_panel(snapshot, now_ms), ratio=1, minimum_size=28),
    )
    layout["middle"].split_row(
        Layout(symbols_panel(snapshot, now_ms), ratio=2),
        Layout(flow_runs_panel(snapshot, now_ms), ratio=3),
    )
    layout["bottom"].split_row(
        Layout(alerts_panel(snapshot), ratio=1),
        Layout(problems_panel(snapshot), ratio=1),
    )
    return layout


def frame(target: Target, snapshot: Snapshot, now_ms: int) -> Group:
    """The same panels stacked at their natural height: one frame for a pipe or a log."""
    return Group(
        header(target, snapshot, now_ms),
        queues_panel(snapshot),
        producers_panel(snapshot, now_ms),
        ingest_panel(snapshot, now_ms),
        symbols_panel(snapshot, now_ms),
        flow_runs_panel(snapshot, now_ms),
        alerts_panel(snapshot),
        problems_panel(snapshot),
    )
