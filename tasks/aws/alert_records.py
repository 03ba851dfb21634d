"""DynamoDB adapter for alert state and the alert log, kept in the candles table.

- ``_alert_state`` / ``<SYMBOL>#<rule>``: the ``AlertState`` of one rule and symbol, written only
  forward in time (``last_evaluated_minute`` must grow), so two runs of the same minute cannot both
  move it;
- ``_alerts`` / ``<minute>#<SYMBOL>#<rule>#<kind>``: every message the flow decided to publish, with
  ``published_ms`` once SNS took it. The item is claimed before publishing and marked after, so a run
  that crashed in between publishes on the re-run, and a re-run after the mark publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import condition_failed, translate
from tasks.core.alert_message import AlertMessage
from tasks.core.alert_state import AlertState
from tasks.core.anomaly import RuleName
from tasks.core.keys import iso_time

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_MARKET = "_alert_state"
LOG_MARKET = "_alerts"


@dataclass(frozen=True, slots=True)
class LoggedAlert:
    message: AlertMessage
    published_ms: int | None


def _opt(item: dict[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def state(client: DynamoDBClient, table: str, symbol: str, rule: RuleName) -> AlertState | None:
    with translate("dynamodb", "GetItem", f"table {table!r}"):
        item = client.get_item(
            TableName=table,
            Key={"marketid": {"S": STATE_MARKET}, "timestamp": {"S": f"{symbol}#{rule.value}"}},
            ConsistentRead=True,
        ).get("Item")
    if item is None:
        return None
    return AlertState(
        item["active"]["BOOL"],
        _opt(item, "since_minute"),
        _opt(item, "last_published_minute"),
        int(item["last_evaluated_minute"]["N"]),
    )


def save_state(
    client: DynamoDBClient, table: str, symbol: str, rule: RuleName, new: AlertState
) -> bool:
    """Store ``new`` unless a run already evaluated this minute or a later one; True if stored."""
    item: dict[str, Any] = {
        "marketid": {"S": STATE_MARKET},
        "timestamp": {"S": f"{symbol}#{rule.value}"},
        "active": {"BOOL": new.active},
        "last_evaluated_minute": {"N": str(new.last_evaluated_minute)},
    }
    for name in ("since_minute", "last_published_minute"):
        value = getattr(new, name)
        if value is not None:
            item[name] = {"N": str(value)}
    try:
        with translate("dynamodb", "PutItem", f"table {table!r}"):
            client.put_item(
                TableName=table,
                Item=item,
                ConditionExpression="attribute_not_exists(marketid) OR last_evaluated_minute < :m",
                ExpressionAttributeValues={":m": {"N": str(new.last_evaluated_minute)}},
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def _log_key(m: AlertMessage) -> dict[str, Any]:
    sort = f"{iso_time(m.minute)}#{m.symbol}#{m.rule.value}#{m.kind}"
    return {"marketid": {"S": LOG_MARKET}, "timestamp": {"S": sort}}


def claim(client: DynamoDBClient, table: str, message: AlertMessage) -> bool:
    """Log ``message`` as to be published; False if it is logged already and was published."""
    item = {
        **_log_key(message),
        "symbol": {"S": message.symbol},
        "rule": {"S": message.rule.value},
        "kind": {"S": message.kind},
        "minute": {"N": str(message.minute)},
        "severity": {"S": message.severity},
        "subject": {"S": message.subject},
        "body": {"S": message.body},
    }
    try:
        with translate("dynamodb", "PutItem", f"table {table!r}"):
            client.put_item(
                TableName=table,
                Item=item,
                # A re-run may publish what a crashed run claimed but never published.
                ConditionExpression="attribute_not_exists(marketid) OR attribute_not_exists(published_ms)",
            )
    except Exception as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def mark_published(
    client: DynamoDBClient, table: str, message: AlertMessage, published_ms: int, message_id: str
) -> None:
    with translate("dynamodb", "UpdateItem", f"table {table!r}"):
        client.update_item(
            TableName=table,
            Key=_log_key(message),
            UpdateExpression="SET published_ms = :p, sns_message_id = :i",
            ExpressionAttributeValues={":p": {"N": str(published_ms)}, ":i": {"S": message_id}},
        )


def recent(client: DynamoDBClient, table: str, limit: int = 50) -> list[LoggedAlert]:
    """The newest logged alerts, newest first."""
    with translate("dynamodb", "Query", f"table {table!r}"):
        response = client.query(
            TableName=table,
            KeyConditionExpression="marketid = :m",
            ExpressionAttributeValues={":m": {"S": LOG_MARKET}},
            ScanIndexForward=False,
            Limit=limit,
            ConsistentRead=True,
        )
    out = []
    for item in response.get("Items", []):
        body = item["body"]["S"]
        message = AlertMessage(
            item["symbol"]["S"],
            RuleName(item["rule"]["S"]),
            item["kind"]["S"],
            int(item["minute"]["N"]),
            item["severity"]["S"],
            item["subject"]["S"],
            body,
        )
        out.append(LoggedAlert(message, _opt(item, "published_ms")))
    return out
