"""Every name comes from the spec: another prefix renames everything, and the containers agree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from infra.spec import resource_spec
from tasks.settings import Settings
from tests.infra.conftest import Synth, Synths

NAME_PROPERTIES = (
    "Name",
    "QueueName",
    "BucketName",
    "TableName",
    "TopicName",
    "ClusterName",
    "ServiceName",
    "Family",
    "LogGroupName",
    "AliasName",
    "AlarmName",
    "DatabaseName",  # of the Glue tables, whose own names live in their database
)


def _names(synth: Synth) -> Iterator[tuple[str, str]]:
    """(logical id, name) of every resource that is given a name rather than a generated one."""
    for logical_id, resource in synth.json["Resources"].items():
        props: dict[str, Any] = resource.get("Properties", {})
        for key in NAME_PROPERTIES:
            if isinstance(props.get(key), str):
                yield logical_id, props[key]
        database = props.get("DatabaseInput", {}).get("Name")
        if database:
            yield logical_id, database


def test_every_given_name_carries_the_prefix(synths: Synths) -> None:
    prefix = synths.renamed.config.settings.prefix
    names = list(_names(synths.renamed))
    assert len(names) > 25
    for logical_id, name in names:
        assert prefix in name or prefix.replace("-", "_") in name, (logical_id, name)
        assert "candleflow" not in name, (logical_id, name)
    assert synths.renamed.stack.stack_name == prefix


def test_another_prefix_renames_every_resource(synths: Synths) -> None:
    default, renamed = dict(_names(synths.default)), dict(_names(synths.renamed))
    assert default.keys() == renamed.keys()
    assert not set(default.values()) & set(renamed.values())


def test_the_lake_bucket_setting_names_the_bucket_and_its_tables(synths: Synths) -> None:
    renamed = synths.renamed
    bucket = renamed.config.settings.lake_bucket
    assert bucket is not None
    renamed.one("AWS::S3::Bucket", BucketName=bucket)
    for table in renamed.props("AWS::Glue::Table"):
        assert table["TableInput"]["StorageDescriptor"]["Location"].startswith(f"s3://{bucket}/")


@pytest.mark.parametrize("component", ["producer", "sampler", "worker", "api"])
def test_containers_resolve_the_spec_the_stack_was_built_from(
    synths: Synths, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed = synths.renamed
    _, task = renamed.one(
        "AWS::ECS::TaskDefinition", Family=renamed.config.names.service(component)
    )
    (container,) = task["ContainerDefinitions"]
    for name in [n for n in os.environ if n.startswith("CANDLEFLOW_")]:
        monkeypatch.delenv(name)
    for variable in container["Environment"]:
        if isinstance(variable["Value"], str):
            monkeypatch.setenv(variable["Name"], variable["Value"])
    assert resource_spec(Settings()) == renamed.spec
