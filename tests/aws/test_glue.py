from __future__ import annotations

import pytest

from tasks.aws import glue
from tasks.core.catalog import lake_tables, partition_input, table_input
from tasks.errors import ResourceMissing
from tests.aws.moto_api import held_state
from tests.conftest import AwsEnv

ROLE = "arn:aws:iam::123456789012:role/candleflow-crawler"


def test_provisioning_creates_the_lake_tables_and_ensuring_them_again_changes_nothing(
    aws: AwsEnv,
) -> None:
    db, bucket = aws.spec.glue_database, aws.spec.bucket.name
    assert sorted(glue.table_names(aws.clients.glue, db)) == ["candles", "spreads", "trades"]
    for table in lake_tables(aws.spec):
        assert glue.ensure_table(aws.clients.glue, db, table_input(table, bucket)) == "unchanged"
    trades = glue.get_table(aws.clients.glue, db, "trades")
    assert trades.location == f"s3://{bucket}/trades/"
    assert [(k.name, k.type) for k in trades.partition_keys] == [
        ("symbol", "string"),
        ("date", "string"),
        ("hour", "string"),
    ]
    assert ("price", "decimal(38,8)") in [(c.name, c.type) for c in trades.columns]


def test_a_table_whose_definition_drifted_is_updated_once(aws: AwsEnv) -> None:
    db, bucket = aws.spec.glue_database, aws.spec.bucket.name
    trades, *_ = lake_tables(aws.spec)
    drifted = table_input(trades, bucket)
    drifted["StorageDescriptor"] = {
        **drifted["StorageDescriptor"],
        "Columns": [{"Name": "trade_id", "Type": "string"}],
    }
    assert glue.ensure_table(aws.clients.glue, db, drifted) == "updated"
    assert [c.type for c in glue.get_table(aws.clients.glue, db, "trades").columns] == ["string"]
    assert glue.ensure_table(aws.clients.glue, db, table_input(trades, bucket)) == "updated"
    assert glue.ensure_table(aws.clients.glue, db, table_input(trades, bucket)) == "unchanged"


def test_a_missing_table_is_created_and_a_missing_database_named(aws: AwsEnv) -> None:
    db, bucket = aws.spec.glue_database, aws.spec.bucket.name
    trades, *_ = lake_tables(aws.spec)
    aws.clients.glue.delete_table(DatabaseName=db, Name="trades")
    assert glue.ensure_table(aws.clients.glue, db, table_input(trades, bucket)) == "created"
    with pytest.raises(ResourceMissing, match="no_such_db"):
        glue.ensure_table(aws.clients.glue, "no_such_db", table_input(trades, bucket))


def test_partitions_are_added_idempotently_in_batches(aws: AwsEnv) -> None:
    db, bucket = aws.spec.glue_database, aws.spec.bucket.name
    trades, *_ = lake_tables(aws.spec)
    values = [("BTCUSDT", f"2024-08-{d:02d}", f"{h:02d}") for d in range(1, 8) for h in range(24)]
    inputs = [partition_input(trades, bucket, v) for v in values]
    assert len(inputs) > glue.BATCH_CREATE_MAX
    assert glue.add_partitions(aws.clients.glue, db, "trades", inputs[:10]) == 10
    assert glue.add_partitions(aws.clients.glue, db, "trades", inputs) == len(inputs) - 10
    assert glue.add_partitions(aws.clients.glue, db, "trades", inputs) == 0
    listed = {p.values: p.location for p in glue.partitions(aws.clients.glue, db, "trades")}
    assert set(listed) == set(values)
    assert listed[values[0]] == f"s3://{bucket}/trades/symbol=BTCUSDT/date=2024-08-01/hour=00/"


def test_partitions_of_a_missing_table_raise_resource_missing(aws: AwsEnv) -> None:
    trades, *_ = lake_tables(aws.spec)
    inputs = [partition_input(trades, aws.spec.bucket.name, ("BTCUSDT", "2024-08-08", "23"))]
    with pytest.raises(ResourceMissing):
        glue.add_partitions(aws.clients.glue, aws.spec.glue_database, "nope", inputs)


def test_the_crawler_is_created_once_and_a_running_one_is_left_alone(
    aws: AwsEnv,
) -> None:
    name, db = aws.spec.catalog.crawler, aws.spec.glue_database
    assert glue.ensure_crawler(aws.clients.glue, name, ROLE, db, ["trades", "candles"]) == "created"
    assert glue.ensure_crawler(aws.clients.glue, name, ROLE, db, ["trades", "candles"]) == (
        "unchanged"
    )
    crawler = aws.clients.glue.get_crawler(Name=name)["Crawler"]
    assert crawler["Targets"]["CatalogTargets"] == [
        {"DatabaseName": db, "Tables": ["trades", "candles"]}
    ]
    with held_state(aws.endpoint, "glue::crawl", describes=1000):
        assert glue.start_crawler(aws.clients.glue, name) is True
        assert glue.start_crawler(aws.clients.glue, name) is False
    with pytest.raises(ResourceMissing):
        glue.start_crawler(aws.clients.glue, "no-such-crawler")
