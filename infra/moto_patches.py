"""moto, made to behave as AWS does where candleflow relies on it, and to spend less per request.

Each ``make_*`` function patches moto's classes in this process once (calling it again does nothing);
``apply_all`` applies every one. ``infra.emulator`` serves moto with all of them.

- **Atomic conditional writes.** On AWS a conditional PutItem/UpdateItem/DeleteItem checks its
  condition and writes as one atomic step; candleflow's optimistic locking (``version``) and
  idempotent writes rely on that. moto's DynamoDB backend checks and then writes without a lock, so
  two threads of its server can both pass the same condition and one write is lost (seen with four
  concurrent ingest workers on one minute). ``make_dynamodb_writes_atomic`` serialises the backend's
  item writes behind one lock, which is what AWS guarantees per item. Reads are not locked.
- **Items served fast.** moto writes every response by walking botocore's shape model member by
  member. For DynamoDB items that walk is most of the emulator's time (~5 ms per 20-attribute item
  returned: every attribute value checks all ten members of ``AttributeValue``), so a day of 1,440
  candles took ~7 s to read. An item's attribute values are already in the wire format, so
  ``make_dynamodb_items_fast`` emits them as they are when they hold only strings, numbers,
  booleans, nulls, string/number sets, lists and maps (binary values, which need base64, still take
  moto's way). The bytes sent are the same.
- **Items sized once.** moto checks an item against DynamoDB's 400 KB limit while building it, by
  summing the sizes of every attribute already in it at each attribute it adds: quadratic, ~20% of
  the CPU of a 20-attribute PutItem. ``make_items_sized_once`` builds the same attributes and checks
  the same total once: sizes are never negative, so the total is over the limit exactly when one of
  moto's partial sums was.
- **Actions looked up once.** moto lists a response class's methods (``inspect.getmembers``) on every
  request to see whether it implements the action; ``make_action_lookup_cached`` remembers the list
  per class (classes do not grow methods at run time).
- **Transactions that copy what they touch.** Before a TransactWriteItems moto deep-copies the whole
  table, once per action, to roll back if any action fails: ~100 copies of a 1,440-item day for one
  transaction of 100 candles, and more as the table grows. ``make_transactions_cheap`` copies the
  items the actions name instead, under the write lock, and puts exactly those back when the
  transaction fails (moto's own rollback then puts back the very table object: nothing). Other
  writes cannot interleave (the lock), and an action touches only its own item, so what a failed
  transaction leaves is what moto's full copy would have (tests/aws/test_dynamodb_transactions.py).
- **No leaks.** moto keeps every model object it ever creates (``BaseModel.instances_tracked``, for
  its dashboard and its reset) and its DynamoDB reads deep-copy items: every SQS message, every
  item read or written, every overwritten S3 object stayed in memory for the life of the server, ~8
  MB a minute under the 1,000 trades/s soak. ``make_model_tracking_weak`` keeps tracking them,
  weakly: what moto still references stays listed, what it dropped is freed.
- **Routing without listing.** moto's server finds the service of every request under one global
  lock, and on the way lists its own package directory (``os.listdir`` plus an ``isdir`` per entry,
  ~150) to check the host against it; ``make_request_routing_fast`` lists it once.
"""

from __future__ import annotations

import copy
import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

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


ITEM_SIZE_LIMIT = 405_000  # moto's own: between the 400 KB documented and the ~409 KB measured


def make_items_sized_once() -> None:
    """Check a new item's size once rather than once per attribute (idempotent); see the module doc."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    if getattr(Item.__init__, "candleflow_sized_once", False):
        return

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict(values)  # dict.update: no per-attribute check

    init.__dict__["candleflow_sized_once"] = True
    Item.__init__ = init  # type: ignore[method-assign]


def make_action_lookup_cached() -> None:
    """List each response class's methods once, not on every request (idempotent)."""
    from moto.core import responses

    listed = responses.method_names_from_class  # type: ignore[attr-defined]
    if getattr(listed, "candleflow_cached", False):
        return
    cached = functools.lru_cache(maxsize=None)(listed)
    cached.__dict__["candleflow_cached"] = True
    responses.method_names_from_class = cached  # type: ignore[attr-defined]


def apply_all() -> None:
    """Every patch of this module (idempotent)."""
    make_transactions_cheap()
    make_dynamodb_writes_atomic()
    make_dynamodb_items_fast()
    make_items_sized_once()
    make_action_lookup_cached()
    make_model_tracking_weak()
    make_request_routing_fast()


_TRANSACTION = threading.local()  # .cheap: this thread is inside a transaction with item snapshots


class _CopyInTransactions:
    """``copy`` as moto's DynamoDB backend module sees it: inside a transaction, a table is not
    copied (its touched items are, by ``make_transactions_cheap``); everything else is the real
    module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        if getattr(_TRANSACTION, "cheap", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def _snapshots(
    backend: Any, transact_items: list[dict[str, Any]]
) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, a deep copy of the stored item or None) of every item the
    transaction may write."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    found = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName"))
            if table is None or op_type == "ConditionCheck":
                continue
            key = op["Item"] if op_type == "Put" else op.get("Key", {})
            if table.hash_key_attr not in key:
                continue
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in key:
                    continue
                range_key = DynamoType(key[table.range_key_attr])
            stored = table.get_item(hash_key, range_key)
            found.append((table, hash_key, range_key, copy.deepcopy(stored)))
    return found


def _restore(snapshots: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_key, range_key, item in reversed(snapshots):
        if range_key is None:
            table.items.pop(hash_key, None)
            if item is not None:
                table.items[hash_key] = item
        else:
            table.items[hash_key].pop(range_key, None)
            if item is not None:
                table.items[hash_key][range_key] = item


def make_transactions_cheap() -> None:
    """Roll a failed TransactWriteItems back from copies of its own items, not of whole tables
    (idempotent); see the module doc."""
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend

    transact = DynamoDBBackend.transact_write_items
    if getattr(transact, "candleflow_cheap", False):
        return
    models.copy = _CopyInTransactions()  # type: ignore[attr-defined,assignment]

    def cheap(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            snapshots = _snapshots(self, transact_items)
            _TRANSACTION.cheap = True
            try:
                transact(self, transact_items)
            except BaseException:
                _restore(snapshots)
                raise
            finally:
                _TRANSACTION.cheap = False

    cheap.__dict__["candleflow_cheap"] = True
    DynamoDBBackend.transact_write_items = cheap  # type: ignore[method-assign]
