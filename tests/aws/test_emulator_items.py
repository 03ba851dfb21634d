"""The embedded emulator's fast DynamoDB item serialisation sends exactly what moto's own would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.serialize import BaseJSONSerializer, JSONSerializer
from moto.core.utils import get_service_model

from infra.moto_patches import make_dynamodb_items_fast, plain_attribute_value

scalars = st.one_of(
    st.text(max_size=20).map(lambda s: {"S": s}),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(lambda d: {"N": str(d)}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=5), min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
    st.lists(st.integers().map(str), min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
    st.binary(max_size=8).map(lambda b: {"B": b}),  # needs base64: moto's own way
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        # (moto itself mangles a map key "": names are never empty here)
        st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)
items = st.dictionaries(st.text(min_size=1, max_size=8), values, min_size=1, max_size=6)


def _body(operation: str, result: dict[str, Any], fast: bool) -> Any:
    make_dynamodb_items_fast()
    patched = BaseJSONSerializer._serialize_type_structure
    generic = patched.__dict__["generic"]
    model = get_service_model("dynamodb").operation_model(operation)
    BaseJSONSerializer._serialize_type_structure = patched if fast else generic  # type: ignore[method-assign]
    try:
        return json.loads(JSONSerializer(model).serialize(result)["body"])
    finally:
        BaseJSONSerializer._serialize_type_structure = patched  # type: ignore[method-assign]


@settings(max_examples=150, deadline=None)
@given(found=st.lists(items, max_size=4))
def test_query_responses_are_the_same_with_and_without_the_fast_path(
    found: list[dict[str, Any]],
) -> None:
    result = {"Items": found, "Count": len(found), "ScannedCount": len(found)}
    assert _body("Query", result, fast=True) == _body("Query", result, fast=False)


@settings(max_examples=50, deadline=None)
@given(item=items)
def test_get_item_responses_are_the_same_with_and_without_the_fast_path(
    item: dict[str, Any],
) -> None:
    assert _body("GetItem", {"Item": item}, fast=True) == _body(
        "GetItem", {"Item": item}, fast=False
    )


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"S": "x"}, True),
        ({"N": "1.5"}, True),
        ({"M": {"a": {"L": [{"S": "x"}, {"NULL": True}]}}}, True),
        ({"B": b"\x00"}, False),  # base64 on the wire
        ({"L": [{"S": "x"}, {"BS": [b"\x00"]}]}, False),
        ({"S": "x", "N": "1"}, False),  # not one type: leave it to moto
        ({"N": 1}, False),  # not wire form
    ],
)
def test_only_values_already_in_wire_form_take_the_fast_path(value: Any, plain: bool) -> None:
    assert plain_attribute_value(value) is plain
