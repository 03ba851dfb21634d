"""DynamoDB adapter for the gap records and the gap scan's watermarks, kept in the candles table.

Partition ``_gaps``, sort key ``<SYMBOL>#<first id, 20 digits>``: one record per gap, open until it is
filled, then kept with its fill time. Partition ``_gap_watermark``, sort key ``<SYMBOL>``: the highest
trade id a scan has accounted for. Both partitions start with ``_``, which no Binance symbol does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.aws._errors import condition_failed, translate
from tasks.aws.pages import query_items
from tasks.core.gaps import Gap, GapRecord, Watermark
from tasks.core.keys import GAPS_MARKET, WATERMARK_MARKET, gap_sort_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def watermark(client: DynamoDBClient, table: str, symbol: str) -> Watermark | None:
    with translate("dynamodb", "GetItem", f"table {table!r}"):
        item = client.get_item(
            TableName=table,
            Key={"marketid": {"S": WATERMARK_MARKET}, "timestamp": {"S": symbol}},
            ConsistentRead=True,
        ).get("Item")
    if item is None:
        return None
    return Watermark(symbol, int(item["last_id"]["N"]), int(item["open_time"]["N"]))


def advance_watermark(client: DynamoDBClient, table: str, mark: Watermark) -> bool:
    """Store ``mark`` unless the stored one is already further; True if stored."""
    try:
        with translate("dynamodb", "PutItem", f"table {table!r}"):
            client.put_item(
                TableName=table,
                Item={
                    "marketid": {"S": WATERMARK_MARKET},
                    "timestamp": {"S": mark.symbol},
                    "last_id": {"N": str(mark.last_id)},
                    "open_time": {"N": str(mark.open_time)},
                },
                # Never move back: two scans racing must not re-report the gaps between them.
                ConditionExpression="attribute_not_exists(marketid) OR last_id < :id",
                ExpressionAttributeValues={":id": {"N": str(mark.last_id)}},
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def _item(record: GapRecord) -> dict[str, Any]:
    g = record.gap
    item: dict[str, Any] = {
        "marketid": {"S": GAPS_MARKET},
        "timestamp": {"S": gap_sort_key(g.symbol, g.first_id)},
        "symbol": {"S": g.symbol},
        "first_id": {"N": str(g.first_id)},
        "last_id": {"N": str(g.last_id)},
        "start_ms": {"N": str(g.start_ms)},
        "end_ms": {"N": str(g.end_ms)},
        "detected_ms": {"N": str(record.detected_ms)},
        "state": {"S": "open" if record.is_open else "filled"},
    }
    if record.filled_ms is not None:
        item["filled_ms"] = {"N": str(record.filled_ms)}
    return item


def _record(item: dict[str, Any]) -> GapRecord:
    gap = Gap(
        item["symbol"]["S"],
        int(item["first_id"]["N"]),
        int(item["last_id"]["N"]),
        int(item["start_ms"]["N"]),
        int(item["end_ms"]["N"]),
    )
    filled = item.get("filled_ms")
    return GapRecord(gap, int(item["detected_ms"]["N"]), int(filled["N"]) if filled else None)


def record_new(client: DynamoDBClient, table: str, gaps: list[Gap], detected_ms: int) -> int:
    """Store newly found gaps as open; a gap already recorded (a re-run) is left as it is."""
    stored = 0
    for gap in gaps:
        try:
            with translate("dynamodb", "PutItem", f"table {table!r}"):
                client.put_item(
                    TableName=table,
                    Item=_item(GapRecord(gap, detected_ms)),
                    ConditionExpression="attribute_not_exists(marketid)",
                )
            stored += 1
        except Exception as exc:
            if not condition_failed(exc):
                raise
    return stored


def put(client: DynamoDBClient, table: str, record: GapRecord) -> None:
    """Write a record as it is now (a gap shrunk, or filled)."""
    with translate("dynamodb", "PutItem", f"table {table!r}"):
        client.put_item(TableName=table, Item=_item(record))


def records(
    client: DynamoDBClient,
    table: str,
    symbol: str | None = None,
    *,
    open_only: bool = False,
) -> list[GapRecord]:
    """Gap records by symbol and first id; all symbols when ``symbol`` is None."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "marketid = :m",
        "ExpressionAttributeValues": {":m": {"S": GAPS_MARKET}},
        "ConsistentRead": True,
    }
    if symbol is not None:
        kwargs["KeyConditionExpression"] += " AND begins_with(#ts, :p)"
        kwargs["ExpressionAttributeNames"] = {"#ts": "timestamp"}
        kwargs["ExpressionAttributeValues"][":p"] = {"S": f"{symbol}#"}
    found = [_record(item) for item in query_items(client, kwargs)]
    return [r for r in found if r.is_open] if open_only else found
