"""The flow process of a benchmark run, and the handle the benchmark drives it with.

``python -m benchmarks.worker [ingest|backfill]`` imports that flow (prefect, polars;
great-expectations on first use; ``ingest`` when not given), then serves JSON-line commands on stdin,
answering each with one JSON line on the original stdout (everything else the process prints goes to
stderr, the worker's log):

- ``{"cmd": "ingest", "until_empty": true, "max_seconds": null, "profile": null}`` runs
  ``ingest_trades`` once and answers its report, wall seconds and memory. The first command is the
  warm-up: it pays for imports, the great-expectations context and the first Prefect API calls, so
  later ones measure only the ingest. ``profile`` names a file to write cProfile stats of the run to.
- ``{"cmd": "backfill", "start": ISO, "end": ISO, "symbols": [...], "fetch_missing": false,
  "profile": null}`` runs the ``backfill`` flow once and answers the same figures plus its flow run
  id. The peak RSS is reset first (where Linux allows), so it is this run's own.
- ``{"cmd": "timings", "flow_run_id": ID}`` answers where a finished flow run's time went
  (``benchmarks.timings``), read from the Prefect API; not part of any timed command.
- ``{"cmd": "exit"}`` (or end of input) ends the process.
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any


class WorkerError(RuntimeError):
    """A flow worker failed or went silent; the message names its log."""


def memory_kb() -> dict[str, int]:
    """This process's peak (VmHWM) and current (VmRSS) resident set size, KiB."""
    status = Path("/proc/self/status")
    found: dict[str, int] = {}
    if status.exists():
        for line in status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                found[name] = int(value.split()[0])
    if "VmHWM" not in found:  # not Linux: ru_maxrss is the peak (KiB on Linux, bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        found = {"VmHWM": peak // 1024 if sys.platform == "darwin" else peak, "VmRSS": 0}
    return {"peak_rss_kb": found["VmHWM"], "rss_kb": found["VmRSS"]}


def reset_peak_rss() -> bool:
    """Set this process's peak RSS (VmHWM) back to its current RSS (Linux); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _timed(run: Callable[[], Any], profile: str | None) -> tuple[Any, float, float]:
    """``run()``'s result, wall and CPU seconds; cProfile stats go to ``profile`` when given."""
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    result = run()
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    return result, seconds, cpu_s


def _ingest(command: dict[str, Any]) -> dict[str, Any]:
    from flows.ingest_trades import ingest_trades

    report, seconds, cpu_s = _timed(
        lambda: ingest_trades(
            max_seconds=command.get("max_seconds"), until_empty=command.get("until_empty", True)
        ),
        command.get("profile"),
    )
    return {"seconds": seconds, "cpu_s": cpu_s, "report": asdict(report), **memory_kb()}


def _backfill(command: dict[str, Any]) -> dict[str, Any]:
    from flows.backfill import backfill

    reset = reset_peak_rss()
    before = memory_kb()["rss_kb"]
    state, seconds, cpu_s = _timed(
        lambda: backfill(
            command["start"],
            command.get("end"),
            command.get("symbols"),
            fetch_missing=command.get("fetch_missing", False),
            return_state=True,
        ),
        command.get("profile"),
    )
    report = state.result()  # raises what the flow raised
    return {
        "seconds": seconds,
        "cpu_s": cpu_s,
        "report": asdict(report),
        "flow_run_id": str(state.state_details.flow_run_id),
        "rss_before_kb": before,
        "peak_reset": reset,
        **memory_kb(),
    }


def _timings(command: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.timings import flow_run_timings

    return flow_run_timings(command["flow_run_id"])


_COMMANDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ingest": _ingest,
    "backfill": _backfill,
    "timings": _timings,
}
_FLOWS = {"ingest": "flows.ingest_trades", "backfill": "flows.backfill"}


def serve(argv: list[str]) -> int:
    flow = argv[0] if argv else "ingest"
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout lands in the log
    importlib.import_module(_FLOWS[flow])  # pay for prefect and polars before the first command

    channel.write(json.dumps({"ready": True, **memory_kb()}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("cmd") == "exit":
            break
        try:
            answer = _COMMANDS[command.get("cmd", "ingest")](command)
        except Exception as exc:  # reported to the benchmark, which stops the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        channel.write(json.dumps(answer) + "\n")
    return 0


class Worker:
    """A running ``benchmarks.worker`` process for ``flow``; ``call`` sends a command and waits for
    the answer."""

    def __init__(self, env: dict[str, str], log_path: Path, flow: str = "ingest") -> None:
        self.log_path = log_path
        self.flow = flow
        self._log = log_path.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", flow],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        assert self._proc.stdout is not None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._answers.put(line)
        self._answers.put(None)

    def answer(self, timeout_s: float) -> dict[str, Any]:
        """The next answer line, within ``timeout_s``."""
        try:
            line = self._answers.get(timeout=timeout_s)
        except queue.Empty:
            raise WorkerError(
                f"{self.flow} worker silent for {timeout_s:.0f} s; see {self.log_path}"
            ) from None
        if line is None:
            raise WorkerError(
                f"{self.flow} worker exited with {self._proc.wait()}; see {self.log_path}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.flow} failed: {answer['error']}; see {self.log_path}")
        return answer

    def send(self, command: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()

    def call(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        self.send(command)
        return self.answer(timeout_s)

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within 30 s."""
        if self._proc.poll() is None:
            try:
                self.send({"cmd": "exit"})
                self._proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
