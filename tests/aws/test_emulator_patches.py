"""moto's items sized once and actions looked up once (``infra.moto_patches``) change nothing moto
answers: the same attributes, the same size limit, the same actions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core import responses
from moto.core.utils import method_names_from_class
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.responses import DynamoHandler
from moto.s3.responses import S3Response
from moto.sqs.responses import SQSResponse

from infra.moto_patches import (
    ITEM_SIZE_LIMIT,
    make_action_lookup_cached,
    make_items_sized_once,
)
from tests.conftest import AwsEnv

make_items_sized_once()
make_action_lookup_cached()


def _attributes_one_by_one(attrs: dict[str, Any]) -> LimitedSizeDict:
    """moto's own way: every attribute added through its size-checking ``__setitem__``."""
    built = LimitedSizeDict()
    for key, value in attrs.items():
        built[key] = DynamoType(value)
    return built


values = st.one_of(
    st.builds(lambda n: {"S": "x" * n}, st.integers(0, 150_000)),
    st.builds(lambda n: {"N": str(n)}, st.integers(0, 10**30)),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(min_size=1, max_size=40), min_size=1)),
    st.builds(lambda n: {"L": [{"S": "y" * n}, {"BOOL": True}]}, st.integers(0, 90_000)),
    st.builds(lambda n: {"M": {"k": {"S": "z" * n}, "n": {"NULL": True}}}, st.integers(0, 90_000)),
)


@settings(max_examples=200)
@given(st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=6))
def test_an_item_sized_once_has_moto_attributes_and_moto_limit(attrs: dict[str, Any]) -> None:
    try:
        expected: LimitedSizeDict | None = _attributes_one_by_one(attrs)
    except ItemSizeTooLarge:
        expected = None
    assert getattr(Item.__init__, "candleflow_sized_once", False)  # not moto compared with itself
    key = DynamoType({"S": "h"})
    if expected is None:
        with pytest.raises(ItemSizeTooLarge):
            Item(key, None, attrs)
    else:
        item = Item(key, None, attrs)
        assert isinstance(item.attrs, LimitedSizeDict)
        assert item.attrs == expected
        assert list(item.attrs) == list(expected)


@pytest.mark.parametrize("extra, fits", [(-1, True), (0, True), (1, False)])
def test_the_size_limit_falls_exactly_where_moto_puts_it(extra: int, fits: bool) -> None:
    # key "a" (1 byte) + a string of n bytes: exactly the limit when n = limit - 1.
    attrs = {"a": {"S": "x" * (ITEM_SIZE_LIMIT - 1 + extra)}}
    key = DynamoType({"S": "h"})
    if fits:
        assert Item(key, None, attrs).attrs == _attributes_one_by_one(attrs)
    else:
        with pytest.raises(ItemSizeTooLarge):
            _attributes_one_by_one(attrs)
        with pytest.raises(ItemSizeTooLarge):
            Item(key, None, attrs)


def test_an_oversized_put_is_refused_over_http_as_aws_refuses_it(aws: AwsEnv) -> None:
    client, table = aws.clients.dynamodb, aws.spec.table.name
    key = {"marketid": {"S": "SIZE#1m"}, "timestamp": {"S": "2024-08-08T00:00:00Z"}}
    client.put_item(TableName=table, Item={**key, "blob": {"S": "x" * 300_000}})
    with pytest.raises(client.exceptions.ClientError, match="Item size has exceeded"):
        client.put_item(TableName=table, Item={**key, "blob": {"S": "x" * 420_000}})
    stored = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert len(stored["blob"]["S"]) == 300_000


@pytest.mark.parametrize("handler", [DynamoHandler, S3Response, SQSResponse])
def test_actions_are_looked_up_once_with_the_same_answer(handler: type) -> None:
    cached = responses.method_names_from_class  # type: ignore[attr-defined]
    assert getattr(cached, "candleflow_cached", False)
    assert cached(handler) == method_names_from_class(handler)
    assert cached(handler) is cached(handler)
    assert "put_item" in cached(DynamoHandler)
