"""The embedded AWS emulator: moto's server, DynamoDB's conditional writes atomic, items fast, no leaks.

On AWS a conditional PutItem/UpdateItem/DeleteItem checks its condition and writes as one atomic
step; candleflow's optimistic locking (``version``) and idempotent writes rely on that. moto's
DynamoDB backend checks and then writes without a lock, so two threads of its server can both pass
the same condition and one write is lost (seen with four concurrent ingest workers on one minute).
``emulator`` serialises the backend's item writes behind one lock, which is what AWS guarantees per
item. Reads are not locked.

moto writes every response by walking botocore's shape model member by member. For DynamoDB items
that walk is most of the emulator's time (~5 ms per 20-attribute item returned: every attribute
value checks all ten members of ``AttributeValue``), so a day of 1,440 candles took ~7 s to read.
An item's attribute values are already in the wire format, so ``make_dynamodb_items_fast`` emits
them as they are when they hold only strings, numbers, booleans, nulls, string/number sets, lists
and maps (binary values, which need base64, still take moto's way). The bytes sent are the same.

moto also keeps every model object it ever creates (``BaseModel.instances_tracked``, for its
dashboard and its reset) and its DynamoDB reads deep-copy items: every SQS message, every item
read or written, every overwritten S3 object stayed in memory for the life of the server, ~8 MB a
minute under the 1,000 trades/s soak. ``make_model_tracking_weak`` keeps tracking them, weakly:
what moto still references stays listed, what it dropped is freed.

moto's server finds the service of every request under one global lock, and on the way lists its own
package directory (``os.listdir`` plus an ``isdir`` per entry, ~150) to check the host against it;
``make_request_routing_fast`` lists it once. Each request also went to the log as an INFO line
through werkzeug's logger; ``serve`` logs only the requests that failed with a 5xx (and werkzeug's
warnings and errors) unless given ``--log-requests``.

A long-running emulator process (``python -m infra.emulator``, ``candleflow aws``) serves each
request on a thread of its own; ``keep_memory_low`` caps glibc's per-thread arenas and hands freed
pages back every few seconds, as the ingest worker does (``tasks.memory``).

``python -m infra.emulator --host 127.0.0.1 --port 5055`` runs it in the foreground.
"""

from __future__ import annotations

import argparse
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
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


_SCALARS = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_SETS = ("SS", "NS")


def plain_attribute_value(value: Any) -> bool:
    """Whether a DynamoDB attribute value is already its own JSON wire form (no binary inside)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in _SCALARS:
        return isinstance(inner, _SCALARS[kind])
    if kind in _SETS:
        return isinstance(inner, list) and all(isinstance(v, str) for v in inner)
    if kind == "L":
        return isinstance(inner, list) and all(plain_attribute_value(v) for v in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(
            isinstance(k, str) and plain_attribute_value(v) for k, v in inner.items()
        )
    return False


def _is_attribute_value(shape: Any) -> bool:
    return bool(
        getattr(shape, "name", None) == "AttributeValue"
        and {"S", "N", "B", "M", "L", "BOOL", "NULL"} <= set(getattr(shape, "members", {}))
    )


def make_dynamodb_items_fast() -> None:
    """Serialise plain DynamoDB attribute values as they are (idempotent); see the module doc."""
    from moto.core.serialize import BaseJSONSerializer

    generic = BaseJSONSerializer._serialize_type_structure
    if getattr(generic, "candleflow_fast", False):
        return

    def serialize(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and _is_attribute_value(shape) and plain_attribute_value(value):
            self._default_serialize(serialized, value, shape, key)
            return
        generic(self, serialized, value, shape, key)

    serialize.__dict__["candleflow_fast"] = True
    serialize.__dict__["generic"] = generic
    BaseJSONSerializer._serialize_type_structure = serialize  # type: ignore[method-assign]


class WeakInstances:
    """What moto's ``instances_tracked`` list is used as (append, iterate), holding weak references."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Any]] = []
        self._prune_at = 1024

    def append(self, instance: Any) -> None:
        try:
            self._refs.append(weakref.ref(instance))
        except TypeError:  # no weak references to it: not tracked (it is freed like the rest)
            return
        if len(self._refs) >= self._prune_at:
            self._refs = [r for r in self._refs if r() is not None]
            self._prune_at = max(1024, 2 * len(self._refs))

    def __iter__(self) -> Iterator[Any]:
        return iter([o for o in (r() for r in self._refs) if o is not None])

    def __len__(self) -> int:
        return sum(1 for r in self._refs if r() is not None)


def make_model_tracking_weak() -> None:
    """Make moto track its model objects weakly (idempotent); see the module doc."""
    from moto.core.common_models import BaseModel

    if getattr(BaseModel.__new__, "candleflow_weak", False):
        return

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance: Any = super(BaseModel, cls).__new__(cls)  # type: ignore[misc]  # as moto does
        tracked = cls.__dict__.get("instances_tracked")
        if not isinstance(tracked, WeakInstances):  # moto's reset puts a list back
            tracked = WeakInstances()
            type.__setattr__(cls, "instances_tracked", tracked)
        tracked.append(instance)
        return instance

    new.__dict__["candleflow_weak"] = True
    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign]


def make_request_routing_fast() -> None:
    """List moto's service modules once rather than on every request (the directory is fixed)."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "candleflow_cached", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def listed() -> tuple[str, ...]:
        return modules

    listed.__dict__["candleflow_cached"] = True
    backends.list_of_moto_modules = listed


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


def emulator(host: str, port: int) -> ThreadedMotoServer:
    """A moto server (not started) whose DynamoDB writes are atomic as on AWS, items served fast."""
    from moto.server import ThreadedMotoServer

    make_dynamodb_writes_atomic()
    make_dynamodb_items_fast()
    make_model_tracking_weak()
    make_request_routing_fast()
    return ThreadedMotoServer(ip_address=host, port=port, verbose=False)


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
