"""DynamoDB adapter for spread candles: columns on the market's candle items (``BTC-AUD_1m``, ``BTCUSDT_1m``).

Spread columns are written with UpdateItem of their own attributes, conditional on their own
``spread_version`` (optimistic locking), so they never disturb a Binance market's kline on the same
item (which keeps its own ``version``). A BTCMarkets market's items hold spread columns only.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import condition_failed, translate
from tasks.aws.dynamodb import key_of
from tasks.aws.pages import query_items
from tasks.core.keys import dirty_sort_key, iso_time, market_id
from tasks.core.models import Interval
from tasks.core.spread_items import parse_samples_text, samples_text, spread_attributes
from tasks.core.spreads import SpreadCandle, SpreadSample
from tasks.errors import ConflictError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Stored = tuple[list[SpreadSample], int]  # the samples of an item and its spread_version (0: none)


def read_samples(
    client: DynamoDBClient, table: str, market: str, interval: Interval, open_times: list[int]
) -> dict[int, Stored]:
    """The stored samples and spread version of these intervals (absent ones are left out)."""
    found: dict[int, Stored] = {}
    unique = sorted(set(open_times))
    for start in range(0, len(unique), 100):
        request: Any = {
            table: {
                "Keys": [key_of(market, interval, t) for t in unique[start : start + 100]],
                "ConsistentRead": True,
                "ProjectionExpression": "open_time, spread_samples, spread_version",
            }
        }
        while request:
            with translate("dynamodb", "BatchGetItem", f"table {table!r}"):
                response = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                if "spread_version" not in item:
                    continue
                found[int(item["open_time"]["N"])] = _stored(market, item)
            request = response.get("UnprocessedKeys") or None
    return found


def _stored(market: str, item: dict[str, Any]) -> Stored:
    samples = parse_samples_text(market, item.get("spread_samples", {}).get("S", ""))
    return samples, int(item["spread_version"]["N"])


def query_samples(
    client: DynamoDBClient,
    table: str,
    market: str,
    interval: Interval,
    start_ms: int,
    end_ms: int,
) -> list[SpreadSample]:
    """Every stored sample of the ``interval`` items opening in ``start_ms..end_ms``."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "marketid = :m AND #ts BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#ts": "timestamp"},
        "ExpressionAttributeValues": {
            ":m": {"S": market_id(market, interval)},
            ":a": {"S": iso_time(start_ms)},
            ":b": {"S": iso_time(end_ms)},
        },
        "ProjectionExpression": "spread_samples",
        "ConsistentRead": True,
    }
    samples: list[SpreadSample] = []
    for item in query_items(client, kwargs):
        samples += parse_samples_text(market, item.get("spread_samples", {}).get("S", ""))
    return samples


def write(
    client: DynamoDBClient,
    table: str,
    candle: SpreadCandle,
    samples: list[SpreadSample] | None,
    version: int,
) -> int:
    """Store the candle's spread columns (and its samples unless None) if the item's spread version
    is still ``version``; returns the new version. Raises ``ConflictError`` otherwise."""
    attrs = spread_attributes(candle)
    attrs["spread_version"] = {"N": str(version + 1)}
    attrs["spread_market"] = {"S": candle.market}
    attrs["spread_interval"] = {"S": candle.interval.value}
    attrs["open_time"] = {"N": str(candle.open_time)}
    if samples is not None:
        attrs["spread_samples"] = {"S": samples_text(samples)}
    names = {f"#a{i}": name for i, name in enumerate(attrs)}
    values: dict[str, Any] = {f":a{i}": value for i, value in enumerate(attrs.values())}
    values[":v"] = {"N": str(version)}
    names["#sv"] = "spread_version"
    try:
        with translate("dynamodb", "UpdateItem", f"table {table!r}"):
            client.update_item(
                TableName=table,
                Key=key_of(candle.market, candle.interval, candle.open_time),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs))),
                # Optimistic lock on the spread columns only: the kline has its own version.
                ConditionExpression="attribute_not_exists(#sv) OR #sv = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
    except Exception as exc:
        if condition_failed(exc):
            raise ConflictError(
                f"spreads of {market_id(candle.market, candle.interval)} "
                f"{iso_time(candle.open_time)} changed"
            ) from exc
        raise
    return version + 1


def read_item(
    client: DynamoDBClient, table: str, market: str, interval: Interval, open_time: int
) -> dict[str, Any] | None:
    """The whole stored item (for readers of the seed's layout and tests)."""
    with translate("dynamodb", "GetItem", f"table {table!r}"):
        return client.get_item(
            TableName=table, Key=key_of(market, interval, open_time), ConsistentRead=True
        ).get("Item")


DIRTY_DAYS = "_dirty_spread_1d"


def mark_days(client: DynamoDBClient, table: str, days: set[tuple[str, int]]) -> None:
    """Mark (market, day) spread candles for recomputing; a fresh token per mark (see clear_day)."""
    for market, day in sorted(days):
        with translate("dynamodb", "UpdateItem", f"table {table!r}"):
            client.update_item(
                TableName=table,
                Key={
                    "marketid": {"S": DIRTY_DAYS},
                    "timestamp": {"S": dirty_sort_key(market, day)},
                },
                UpdateExpression="SET #m = :m, #o = :o, #t = :t",
                ExpressionAttributeNames={"#m": "market", "#o": "open_time", "#t": "token"},
                ExpressionAttributeValues={
                    ":m": {"S": market},
                    ":o": {"N": str(day)},
                    ":t": {"S": uuid.uuid4().hex},
                },
            )


def dirty_days(client: DynamoDBClient, table: str) -> list[tuple[str, int, str]]:
    """Every marked (market, day, token)."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "marketid = :m",
        "ExpressionAttributeValues": {":m": {"S": DIRTY_DAYS}},
        "ConsistentRead": True,
    }
    return [
        (i["market"]["S"], int(i["open_time"]["N"]), i["token"]["S"])
        for i in query_items(client, kwargs)
    ]


def clear_day(client: DynamoDBClient, table: str, market: str, day: int, token: str) -> bool:
    """Delete the mark unless it was marked again since it was read (then it stays for next time)."""
    try:
        with translate("dynamodb", "DeleteItem", f"table {table!r}"):
            client.delete_item(
                TableName=table,
                Key={
                    "marketid": {"S": DIRTY_DAYS},
                    "timestamp": {"S": dirty_sort_key(market, day)},
                },
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":t": {"S": token}},
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True
