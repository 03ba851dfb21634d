"""The embedded AWS emulator: moto's server, with DynamoDB's conditional writes made atomic.

On AWS a conditional PutItem/UpdateItem/DeleteItem checks its condition and writes as one atomic
step; candleflow's optimistic locking (``version``) and idempotent writes rely on that. moto's
DynamoDB backend checks and then writes without a lock, so two threads of its server can both pass
the same condition and one write is lost (seen with four concurrent ingest workers on one minute).
``emulator`` serialises the backend's item writes behind one lock, which is what AWS guarantees per
item. Reads are not locked.

``python -m infra.emulator --host 127.0.0.1 --port 5055`` runs it in the foreground.
"""

from __future__ import annotations

import argparse
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")
_LOCK = threading.RLock()


def _atomic(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return write(*args, **kwargs)

    locked.__dict__["candleflow_atomic"] = True
    return locked


def make_dynamodb_writes_atomic() -> None:
    """Wrap moto's DynamoDB item writes in one lock (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        write = getattr(DynamoDBBackend, name)
        if not getattr(write, "candleflow_atomic", False):
            setattr(DynamoDBBackend, name, _atomic(write))


def emulator(host: str, port: int) -> ThreadedMotoServer:
    """A moto server (not started) whose DynamoDB writes are atomic as on AWS."""
    from moto.server import ThreadedMotoServer

    make_dynamodb_writes_atomic()
    return ThreadedMotoServer(ip_address=host, port=port, verbose=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args(argv)
    server = emulator(args.host, args.port)
    server.start()
    print(f"AWS emulator (moto) listening at http://{args.host}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
