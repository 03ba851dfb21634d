"""DynamoDB adapter: the candles table (partition key ``marketid``, sort key ``timestamp``).

Every write is conditional on the item's ``version`` (optimistic locking), so two workers upserting
the same minute cannot lose each other's trades: the loser gets ``ConflictError``, re-reads and merges.

A market's items may also carry spread columns, written apart from the kline (UpdateItem of their
own attributes) and kept by it; an item with spread columns only is not a kline and is skipped here.

The same table holds the dirty markers of rolled-up candles (``tasks.core.rollup``): partition
``_dirty_1h`` / ``_dirty_1d``, sort key ``<parent open time>#<SYMBOL>``, a fresh ``token`` per mark.
A marker is deleted only if its token is still the one the rollup read before recomputing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Context, Decimal, Inexact, InvalidOperation
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import cancellation_reasons, condition_failed, translate
from tasks.aws.pages import query_items
from tasks.core.candles import id_ranges_text, parse_id_ranges
from tasks.core.keys import dirty_market_id, dirty_sort_key, iso_time, market_id
from tasks.core.models import Candle, Interval
from tasks.core.rollup import DirtyMarker, dirty_parents
from tasks.errors import ConflictError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_DECIMALS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)
CandleKey = tuple[str, Interval, int]
_NOT_STORED = "attribute_not_exists(marketid)"
# DynamoDB numbers hold 38 significant digits; never round silently to Python's default 28.
_NUMBER = Context(prec=38, traps=[Inexact, InvalidOperation])


def _n(value: Decimal | int) -> dict[str, str]:
    if isinstance(value, Decimal):
        text = format(value.normalize(_NUMBER), "f") if value else "0"
        return {"N": text}
    return {"N": str(value)}


def key_of(symbol: str, interval: Interval, open_time: int) -> dict[str, Any]:
    return {
        "marketid": {"S": market_id(symbol, interval)},
        "timestamp": {"S": iso_time(open_time)},
    }


def to_item(candle: Candle, version: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        **key_of(candle.symbol, candle.interval, candle.open_time),
        "symbol": {"S": candle.symbol},
        "interval": {"S": candle.interval.value},
        "open_time": _n(candle.open_time),
        "close_time": _n(candle.close_time),
        "trade_count": _n(candle.trade_count),
        "trade_ids": {"S": id_ranges_text(candle.trade_ids)},
        "version": _n(version),
    }
    for name in _DECIMALS:
        item[name] = _n(getattr(candle, name))
    if candle.first_trade_id is not None and candle.last_trade_id is not None:
        item["first_trade_id"] = _n(candle.first_trade_id)
        item["last_trade_id"] = _n(candle.last_trade_id)
    return item


def from_item(item: dict[str, Any]) -> Candle:
    def opt_int(name: str) -> int | None:
        return int(item[name]["N"]) if name in item else None

    return Candle(
        symbol=item["symbol"]["S"],
        interval=Interval(item["interval"]["S"]),
        open_time=int(item["open_time"]["N"]),
        trade_count=int(item["trade_count"]["N"]),
        first_trade_id=opt_int("first_trade_id"),
        last_trade_id=opt_int("last_trade_id"),
        trade_ids=parse_id_ranges(item.get("trade_ids", {}).get("S", "")),
        version=int(item["version"]["N"]),
        **{name: Decimal(item[name]["N"]) for name in _DECIMALS},
    )


def get_candles(
    client: DynamoDBClient, table: str, keys: list[CandleKey]
) -> dict[CandleKey, Candle]:
    """Strongly consistent reads of the given candles; absent ones are simply not in the result."""
    found: dict[CandleKey, Candle] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), 100):
        request: Any = {
            table: {
                "Keys": [key_of(*k) for k in unique[start : start + 100]],
                "ConsistentRead": True,
            }
        }
        while request:
            with translate("dynamodb", "BatchGetItem", f"table {table!r}"):
                response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                if "version" not in item:
                    continue  # spread columns only so far: no kline stored yet
                candle = from_item(item)
                found[(candle.symbol, candle.interval, candle.open_time)] = candle
            request = response.get("UnprocessedKeys") or None
    return found


def put_candle(client: DynamoDBClient, table: str, candle: Candle) -> Candle:
    """Write ``candle`` if the stored item still has ``candle.version``; returns it with its new version.

    A kline not stored yet (version 0) is put whole, on the condition that no item exists: one cheap
    PutItem (moto spends ~4 ms of CPU on it against ~24 ms for the UpdateItem below). Otherwise, or
    when the item exists already with spread columns only, an UpdateItem of the kline's own
    attributes: whatever else the item holds (spread columns written apart) stays as it is.
    """
    new_version = candle.version + 1
    item = to_item(candle, new_version)
    if candle.version == 0:
        try:
            with translate("dynamodb", "PutItem", f"table {table!r}"):
                client.put_item(TableName=table, Item=item, ConditionExpression=_NOT_STORED)
            return candle.with_version(new_version)
        except Exception as exc:
            if not condition_failed(exc):
                raise
            # An item is there: spread columns only (the update below keeps them), or a kline
            # another writer stored meanwhile (the update's condition fails: a conflict).
    try:
        with translate("dynamodb", "UpdateItem", f"table {table!r}"):
            client.update_item(**_kline_update(table, candle, item))
    except Exception as exc:
        if condition_failed(exc):
            raise ConflictError(
                f"{market_id(candle.symbol, candle.interval)} {iso_time(candle.open_time)} changed"
            ) from exc
        raise
    return candle.with_version(new_version)


def _kline_update(table: str, candle: Candle, item: dict[str, Any]) -> dict[str, Any]:
    """The UpdateItem of ``item``'s kline attributes, on the condition that the stored kline still
    has ``candle.version`` (or there is none): the same request alone or inside a transaction."""
    fields = [k for k in item if k not in ("marketid", "timestamp")]
    names = {f"#a{i}": name for i, name in enumerate(fields)}
    values: dict[str, Any] = {f":a{i}": item[name] for i, name in enumerate(fields)}
    values[":v"] = {"N": str(candle.version)}
    update = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(fields)))
    absent = [n for n in ("first_trade_id", "last_trade_id") if n not in item]
    if absent:
        names.update({f"#r{i}": n for i, n in enumerate(absent)})
        update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(absent)))
    names["#ver"] = "version"
    return {
        "TableName": table,
        "Key": key_of(candle.symbol, candle.interval, candle.open_time),
        "UpdateExpression": update,
        # Optimistic lock: fails if another writer changed the kline since we read it.
        "ConditionExpression": "attribute_not_exists(#ver) OR #ver = :v",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


TRANSACTION_ITEMS = 100  # DynamoDB's limit of actions per TransactWriteItems
_CONFLICTS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def put_candles(client: DynamoDBClient, table: str, candles: Sequence[Candle]) -> list[Candle]:
    """Write up to ``TRANSACTION_ITEMS`` candles in one TransactWriteItems: all or none, each on
    ``put_candle``'s condition; returns them with their new versions.

    One request instead of one per candle: a rebuilt day of 1,440 minutes is 15 requests. On AWS a
    transactional write costs twice the write capacity of a plain one. When any candle's condition
    fails (a minute changed since it was read, or holds spread columns only) or another write holds
    one of the items, nothing is written and ``ConflictError`` is raised: write those candles one
    by one with ``put_candle``, which resolves each case.
    """
    if len(candles) > TRANSACTION_ITEMS:
        raise ValueError(f"{len(candles)} candles: a transaction holds {TRANSACTION_ITEMS} at most")
    if not candles:
        return []
    actions: list[Any] = []
    for candle in candles:
        item = to_item(candle, candle.version + 1)
        if candle.version == 0:
            put = {"TableName": table, "Item": item, "ConditionExpression": _NOT_STORED}
            actions.append({"Put": put})
        else:
            actions.append({"Update": _kline_update(table, candle, item)})
    try:
        with translate("dynamodb", "TransactWriteItems", f"table {table!r}"):
            client.transact_write_items(TransactItems=actions)
    except Exception as exc:
        reasons = cancellation_reasons(exc)
        if reasons and set(reasons) - {"None"} <= _CONFLICTS:
            first = candles[0]
            raise ConflictError(
                f"{len(candles)} candle(s) of {market_id(first.symbol, first.interval)} from "
                f"{iso_time(first.open_time)}: transaction cancelled ({', '.join(reasons)})"
            ) from exc
        raise
    return [c.with_version(c.version + 1) for c in candles]


def query_candles(
    client: DynamoDBClient,
    table: str,
    symbol: str,
    interval: Interval,
    start_ms: int | None = None,
    end_ms: int | None = None,
    *,
    descending: bool = False,
    limit: int | None = None,
    page: int | None = None,
) -> Iterator[Candle]:
    """Candles of one market with ``start_ms <= open_time <= end_ms``, in time order, paginated.

    ``page`` items per request (DynamoDB's 1 MB page otherwise): for callers that stop early.
    """
    condition = "marketid = :m"
    values: dict[str, Any] = {":m": {"S": market_id(symbol, interval)}}
    if start_ms is not None and end_ms is not None:
        condition += " AND #ts BETWEEN :a AND :b"
        values.update({":a": {"S": iso_time(start_ms)}, ":b": {"S": iso_time(end_ms)}})
    elif start_ms is not None:
        condition += " AND #ts >= :a"
        values[":a"] = {"S": iso_time(start_ms)}
    elif end_ms is not None:
        condition += " AND #ts <= :b"
        values[":b"] = {"S": iso_time(end_ms)}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not descending,
        "ConsistentRead": True,
    }
    if "#ts" in condition:
        kwargs["ExpressionAttributeNames"] = {"#ts": "timestamp"}
    returned = 0
    while True:
        if limit is not None:
            kwargs["Limit"] = min(1000, limit - returned, page or 1000)
        elif page is not None:
            kwargs["Limit"] = page
        with translate("dynamodb", "Query", f"table {table!r}"):
            response = client.query(**kwargs)
        for item in response.get("Items", []):
            if "version" not in item:
                continue  # spread columns only so far: no kline stored yet
            yield from_item(item)
            returned += 1
        if "LastEvaluatedKey" not in response or (limit is not None and returned >= limit):
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def mark_dirty(client: DynamoDBClient, table: str, candles: Iterable[Candle]) -> int:
    """Record that the parents of ``candles`` (1m -> 1h, 1h -> 1d) must be rolled up again.

    Call it after writing the candles. Each mark sets a fresh token, so a rollup that read the
    marker before this write cannot clear it. Returns the number of markers set.
    """
    parents = sorted(dirty_parents(candles), key=lambda k: (k[1].value, k[2], k[0]))
    for symbol, interval, open_time in parents:
        with translate("dynamodb", "UpdateItem", f"table {table!r}"):
            client.update_item(
                TableName=table,
                Key={
                    "marketid": {"S": dirty_market_id(interval)},
                    "timestamp": {"S": dirty_sort_key(symbol, open_time)},
                },
                UpdateExpression="SET #s = :s, #i = :i, #o = :o, #t = :t",
                ExpressionAttributeNames={
                    "#s": "symbol",
                    "#i": "interval",
                    "#o": "open_time",
                    "#t": "token",
                },
                ExpressionAttributeValues={
                    ":s": {"S": symbol},
                    ":i": {"S": interval.value},
                    ":o": {"N": str(open_time)},
                    ":t": {"S": uuid.uuid4().hex},
                },
            )
    return len(parents)


def dirty_markers(
    client: DynamoDBClient,
    table: str,
    interval: Interval,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[DirtyMarker]:
    """The markers of ``interval`` parents, all or those opening in ``start_ms..end_ms``."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "marketid = :m",
        "ExpressionAttributeValues": {":m": {"S": dirty_market_id(interval)}},
        "ConsistentRead": True,
    }
    if start_ms is not None and end_ms is not None:
        kwargs["KeyConditionExpression"] += " AND #ts BETWEEN :a AND :b"
        kwargs["ExpressionAttributeNames"] = {"#ts": "timestamp"}
        kwargs["ExpressionAttributeValues"].update(
            {
                ":a": {"S": dirty_sort_key("", start_ms)},
                ":b": {"S": dirty_sort_key("~", end_ms)},  # "~" sorts after every symbol
            }
        )
    return [
        DirtyMarker(
            item["symbol"]["S"],
            Interval(item["interval"]["S"]),
            int(item["open_time"]["N"]),
            item["token"]["S"],
        )
        for item in query_items(client, kwargs)
    ]


def clear_dirty(client: DynamoDBClient, table: str, marker: DirtyMarker) -> bool:
    """Delete ``marker`` unless it was marked again since it was read; True if deleted."""
    try:
        with translate("dynamodb", "DeleteItem", f"table {table!r}"):
            client.delete_item(
                TableName=table,
                Key={
                    "marketid": {"S": dirty_market_id(marker.interval)},
                    "timestamp": {"S": dirty_sort_key(marker.symbol, marker.open_time)},
                },
                # A new token means a child changed after our rollup read it: keep the marker.
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": marker.token}},
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True
