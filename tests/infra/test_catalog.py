"""The Glue catalog and Athena workgroup: the same tables and crawler the workers would make."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from tasks.aws import glue
from tasks.core.catalog import glue_type, lake_tables, table_input
from tests.infra.conftest import Synth


class NewGlueCatalog:
    """A Glue client's two calls ``ensure_crawler`` makes when there is no crawler yet: the first
    answered as AWS does, the second recorded."""

    def __init__(self) -> None:
        self.created: dict[str, Any] = {}

    def get_crawler(self, Name: str) -> None:
        error = {"Error": {"Code": "EntityNotFoundException", "Message": f"{Name} not found"}}
        raise ClientError(error, "GetCrawler")  # type: ignore[arg-type]

    def create_crawler(self, **crawler: Any) -> None:
        self.created = crawler


def test_glue_tables_are_the_catalogs_own_table_inputs(synth: Synth) -> None:
    spec = synth.spec
    for lake_table in lake_tables(spec):
        _, table = synth.one(
            "AWS::Glue::Table",
            DatabaseName=spec.glue_database,
            TableInput=table_input(lake_table, spec.bucket.name),
        )
        assert table["CatalogId"] == {"Ref": "AWS::AccountId"}
    assert len(synth.resources("AWS::Glue::Table")) == len(lake_tables(spec))


def test_glue_table_columns_are_the_lake_tables_columns(synth: Synth) -> None:
    by_name = {t["TableInput"]["Name"]: t["TableInput"] for t in synth.props("AWS::Glue::Table")}
    for lake_table in lake_tables(synth.spec):
        declared = by_name[lake_table.name]
        columns = [(c["Name"], c["Type"]) for c in declared["StorageDescriptor"]["Columns"]]
        assert columns == [(name, glue_type(dtype)) for name, dtype in lake_table.columns]
        assert [c["Name"] for c in declared["PartitionKeys"]] == list(lake_table.partition_keys)
        assert declared["StorageDescriptor"]["Location"] == lake_table.location(
            synth.spec.bucket.name
        )


def test_glue_database_is_the_specs(synth: Synth) -> None:
    (database,) = synth.props("AWS::Glue::Database")
    assert database["DatabaseInput"]["Name"] == synth.spec.glue_database


def test_crawler_is_the_one_the_worker_would_create(synth: Synth) -> None:
    """The crawler only adds partitions to our tables, exactly as tasks/aws/glue.ensure_crawler says."""
    spec = synth.spec
    tables = [t.name for t in lake_tables(spec)]
    client = NewGlueCatalog()
    role = "arn:aws:iam::123456789012:role/crawler"
    glue.ensure_crawler(client, spec.catalog.crawler, role, spec.glue_database, tables)  # type: ignore[arg-type]
    theirs = client.created
    assert theirs["Name"] == spec.catalog.crawler
    _, ours = synth.one("AWS::Glue::Crawler", Name=spec.catalog.crawler)
    assert ours["Targets"]["CatalogTargets"] == theirs["Targets"]["CatalogTargets"]
    assert ours["SchemaChangePolicy"] == theirs["SchemaChangePolicy"]
    assert json.loads(ours["Configuration"]) == json.loads(theirs["Configuration"])
    assert ours["Schedule"] == {"ScheduleExpression": synth.config.sizing.crawler_schedule}


def test_crawler_role_reads_only_the_tables_prefixes(synth: Synth) -> None:
    _, crawler = synth.one("AWS::Glue::Crawler", Name=synth.spec.catalog.crawler)
    role_id = crawler["Role"]["Fn::GetAtt"][0]
    (policy,) = [p for p in synth.props("AWS::IAM::Policy") if p["Roles"] == [{"Ref": role_id}]]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    objects = statements["ReadTheTablesObjects"]
    assert objects["Action"] == "s3:GetObject"
    suffixes = sorted(r["Fn::Join"][1][1] for r in objects["Resource"])
    assert suffixes == sorted(f"/{t.prefix}/*" for t in lake_tables(synth.spec))
    listing = statements["ListTheTablesPrefixes"]
    assert set(listing["Condition"]["StringLike"]["s3:prefix"]) == {
        p for t in lake_tables(synth.spec) for p in (t.prefix, f"{t.prefix}/*")
    }
    assert not any(a.startswith("s3:Put") for s in statements.values() for a in _actions(s))


def test_athena_workgroup_enforces_its_result_location_and_encryption(synth: Synth) -> None:
    spec = synth.spec
    _, workgroup = synth.one("AWS::Athena::WorkGroup", Name=spec.catalog.athena_workgroup)
    config = workgroup["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"] == {
        "OutputLocation": f"s3://{spec.bucket.name}/{spec.bucket.athena_results_prefix}/",
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }
    assert config["BytesScannedCutoffPerQuery"] == synth.config.sizing.athena_bytes_scanned_cutoff


def _actions(statement: dict[str, object]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)  # type: ignore[arg-type]
