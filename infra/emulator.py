"""The embedded AWS emulator: moto, patched to act as AWS does where candleflow relies on it.

``emulator`` builds the server: moto's app with every patch of ``infra.moto_patches`` (atomic
conditional writes, items served fast, cheap transactions, no leaks, cheaper routing) behind
``infra.moto_server``'s keep-alive HTTP server. Each request used to go to the log as an INFO line
through werkzeug's logger; ``serve`` logs only the requests that failed with a 5xx (and werkzeug's
warnings and errors) unless given ``--log-requests``.

A long-running emulator process (``python -m infra.emulator``, ``candleflow aws``) serves each
connection on a thread of its own; ``keep_memory_low`` caps glibc's per-thread arenas and hands
freed pages back every few seconds, as the ingest worker does (``tasks.memory``).

``python -m infra.emulator --host 127.0.0.1 --port 5055`` runs it in the foreground.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.moto_server import MotoServer


def only_server_errors(record: logging.LogRecord) -> bool:
    """A werkzeug log filter: request lines only for 5xx responses; everything else it logs."""
    args = record.args
    if record.levelno == logging.INFO and isinstance(args, tuple) and len(args) == 3:
        return str(args[1]).startswith("5")  # (request line, status code, size)
    return True


def keep_memory_low(every_s: float = 10.0) -> threading.Thread:
    """Cap malloc arenas now and trim freed heap pages every ``every_s`` on a daemon thread."""
    from tasks.memory import limit_arenas, release_free_memory

    limit_arenas()

    def trim() -> None:
        while True:
            time.sleep(every_s)
            release_free_memory()

    thread = threading.Thread(target=trim, name="malloc-trim", daemon=True)
    thread.start()
    return thread


def emulator(host: str, port: int) -> MotoServer:
    """A moto server (not started), patched by ``infra.moto_patches``, keeping connections alive."""
    from infra.moto_patches import apply_all
    from infra.moto_server import MotoServer

    apply_all()
    return MotoServer(host, port)


def log_requests(every: bool) -> None:
    """werkzeug's request lines: every one, or only those of 5xx responses (its other logs stay)."""
    logger = logging.getLogger("werkzeug")
    logger.setLevel(logging.INFO)
    if every:
        logger.removeFilter(only_server_errors)
    else:
        logger.addFilter(only_server_errors)


def serve(host: str, port: int, *, every_request: bool = False, hints: tuple[str, ...] = ()) -> int:
    """Run the emulator in the foreground until interrupted (Ctrl-C)."""
    log_requests(every_request)
    keep_memory_low()
    server = emulator(host, port)
    server.start()
    print(f"AWS emulator (moto) listening at http://{host}:{port}", flush=True)
    for hint in hints:
        print(hint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument(
        "--log-requests", action="store_true", help="log every request, not only 5xx ones"
    )
    args = parser.parse_args(argv)
    return serve(args.host, args.port, every_request=args.log_requests)


if __name__ == "__main__":
    raise SystemExit(main())
