"""Reading every page of a DynamoDB Query: the loop the record adapters share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def query_items(
    client: DynamoDBClient, request: dict[str, Any], limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The items of ``client.query(**request)``, page after page, ``limit`` at most."""
    request = dict(request)
    where = f"table {request['TableName']!r}"
    returned = 0
    while limit is None or returned < limit:
        if limit is not None:
            request["Limit"] = limit - returned
        with translate("dynamodb", "Query", where):
            response = client.query(**request)
        for item in response.get("Items", []):
            yield item
            returned += 1
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
