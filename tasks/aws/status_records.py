"""The pipeline's heartbeats (``tasks.core.heartbeat``) in the candles table, partition ``_status``.

Sort keys: ``ingest``, ``symbol#<SYMBOL>`` (newest stored trade time), ``producer#<id>``. Every write
only moves a record forward in time, so concurrent ingest workers never set it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import condition_failed, translate
from tasks.aws.pages import query_items
from tasks.core.heartbeat import IngestBeat, ProducerBeat

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATUS_MARKET = "_status"


@dataclass(frozen=True, slots=True)
class Heartbeats:
    ingest: IngestBeat | None
    last_trade_ms: dict[str, int]  # symbol -> newest trade time stored
    last_trade_seen_ms: dict[str, int]  # symbol -> when the ingest stored it (worker clock)
    producers: list[ProducerBeat]


def _forward(
    client: DynamoDBClient, table: str, sort_key: str, order: str, attrs: dict[str, Any]
) -> bool:
    """Set ``attrs`` unless the record already has a newer ``order`` attribute; True if written."""
    names = {f"#a{i}": n for i, n in enumerate(attrs)}
    values = {f":a{i}": v for i, v in enumerate(attrs.values())}
    order_ref = next(k for k, n in names.items() if n == order)
    order_value = next(k for k, n in zip(values, attrs, strict=True) if n == order)
    try:
        with translate("dynamodb", "UpdateItem", f"table {table!r}"):
            client.update_item(
                TableName=table,
                Key={"marketid": {"S": STATUS_MARKET}, "timestamp": {"S": sort_key}},
                UpdateExpression="SET "
                + ", ".join(f"{k} = {v}" for k, v in zip(names, values, strict=True)),
                ConditionExpression=f"attribute_not_exists({order_ref}) OR {order_ref} < {order_value}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def _n(value: float | int) -> dict[str, str]:
    return {"N": str(value)}


def record(
    client: DynamoDBClient,
    table: str,
    ingest: IngestBeat,
    last_trades: dict[str, int],
    producers: list[ProducerBeat],
) -> None:
    """Store one batch's beats."""
    _forward(
        client,
        table,
        "ingest",
        "updated_ms",
        {
            "updated_ms": _n(ingest.updated_ms),
            "messages": _n(ingest.messages),
            "trades": _n(ingest.trades),
            "seconds": _n(round(ingest.seconds, 3)),
            "wait_ms": _n(ingest.wait_ms),
        },
    )
    for symbol, trade_ms in sorted(last_trades.items()):
        attrs = {"last_trade_ms": _n(trade_ms), "seen_ms": _n(ingest.updated_ms)}
        _forward(client, table, f"symbol#{symbol}", "last_trade_ms", attrs)
    for beat in producers:
        attrs = {"sent_ms": _n(beat.sent_ms), "seq": _n(beat.seq), "lag_ms": _n(beat.lag_ms)}
        if beat.rate is not None:
            attrs["rate"] = _n(round(beat.rate, 1))
        _forward(client, table, f"producer#{beat.producer}", "sent_ms", attrs)


def read(client: DynamoDBClient, table: str) -> Heartbeats:
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "marketid = :m",
        "ExpressionAttributeValues": {":m": {"S": STATUS_MARKET}},
    }
    items = list(query_items(client, kwargs))
    ingest, last, seen, producers = None, {}, {}, []
    for item in items:
        key = item["timestamp"]["S"]
        num = {k: v["N"] for k, v in item.items() if "N" in v}
        if key == "ingest":
            ingest = IngestBeat(
                int(num["updated_ms"]),
                int(num["messages"]),
                int(num["trades"]),
                float(num["seconds"]),
                int(num["wait_ms"]),
            )
        elif key.startswith("symbol#"):
            last[key.removeprefix("symbol#")] = int(num["last_trade_ms"])
            seen[key.removeprefix("symbol#")] = int(num["seen_ms"])
        elif key.startswith("producer#"):
            rate = num.get("rate")
            producers.append(
                ProducerBeat(
                    key.removeprefix("producer#"),
                    int(num["sent_ms"]),
                    int(num["seq"]),
                    int(num["lag_ms"]),
                    float(rate) if rate is not None else None,
                )
            )
    return Heartbeats(ingest, last, seen, producers)
