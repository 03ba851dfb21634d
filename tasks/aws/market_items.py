"""Read-only access to one market partition of the candles table, as raw items.

For readers that want every column an item holds (klines, spread columns, the seed's ``data``
array). The partition key is always built from a parsed market and interval
(``tasks.core.keys.market_id``), never taken from a caller's text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.aws.pages import query_items
from tasks.core.keys import iso_time, market_id
from tasks.core.models import Interval

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]


def query(
    client: DynamoDBClient,
    table: str,
    market: str,
    interval: Interval,
    start_ms: int | None = None,
    end_ms: int | None = None,
    *,
    newest_first: bool = False,
    limit: int = 1000,
) -> list[Item]:
    """Items of ``market``/``interval`` opening in ``start_ms..end_ms``, at most ``limit``, by time."""
    condition = "marketid = :m"
    values: dict[str, Any] = {":m": {"S": market_id(market, interval)}}
    if start_ms is not None:
        values[":a"] = {"S": iso_time(start_ms)}
    if end_ms is not None:
        values[":b"] = {"S": iso_time(end_ms)}
    if start_ms is not None and end_ms is not None:
        condition += " AND #ts BETWEEN :a AND :b"
    elif start_ms is not None:
        condition += " AND #ts >= :a"
    elif end_ms is not None:
        condition += " AND #ts <= :b"
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not newest_first,
    }
    if "#ts" in condition:
        kwargs["ExpressionAttributeNames"] = {"#ts": "timestamp"}
    return list(query_items(client, kwargs, limit))


def exists(client: DynamoDBClient, table: str, market: str, interval: Interval) -> bool:
    """Whether the market has any item of ``interval``."""
    return bool(query(client, table, market, interval, limit=1))
