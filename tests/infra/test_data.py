"""Queues, the lake bucket and the candles table, as the template declares them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synth


def _queue_named(synth: Synth, name: str) -> tuple[str, dict[str, Any]]:
    return synth.one("AWS::SQS::Queue", QueueName=name)


@pytest.mark.parametrize("which", ["queue", "samples_queue"])
def test_queue_redrives_to_its_dlq_after_the_specs_receive_count(synth: Synth, which: str) -> None:
    spec = getattr(synth.spec, which)
    dlq_id, dlq = _queue_named(synth, spec.dlq_name)
    _, queue = _queue_named(synth, spec.name)
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": spec.max_receive_count,
    }
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_s
    assert queue["MessageRetentionPeriod"] == spec.retention_s
    assert dlq["MessageRetentionPeriod"] == spec.dlq_retention_s


def test_every_queue_is_encrypted_and_refuses_plain_http(synth: Synth) -> None:
    queues = synth.resources("AWS::SQS::Queue")
    assert len(queues) == 5  # trades, samples, their DLQs, the alerts inbox
    assert all(q["Properties"]["SqsManagedSseEnabled"] is True for q in queues.values())
    tls_only = set()
    for policy in synth.props("AWS::SQS::QueuePolicy"):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                tls_only |= {q["Ref"] for q in policy["Queues"]}
    assert tls_only == set(queues)


def test_lake_bucket_is_private_encrypted_versioned_and_logged(synth: Synth) -> None:
    _, lake = synth.one("AWS::S3::Bucket", BucketName=synth.spec.bucket.name)
    assert lake["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert lake["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert lake["VersioningConfiguration"] == {"Status": "Enabled"}
    assert lake["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    logs_id = next(k for k in synth.resources("AWS::S3::Bucket") if k.startswith("AccessLogs"))
    assert lake["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}


def test_lake_bucket_policy_denies_plain_http_and_old_tls(synth: Synth) -> None:
    lake_id, _ = synth.one("AWS::S3::Bucket", BucketName=synth.spec.bucket.name)
    _, policy = synth.one("AWS::S3::BucketPolicy", Bucket={"Ref": lake_id})
    denials = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    conditions = [s["Condition"] for s in denials]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions
    assert all(s["Principal"] == {"AWS": "*"} and s["Action"] == "s3:*" for s in denials)


def test_raw_payloads_age_into_colder_storage_and_old_versions_expire(synth: Synth) -> None:
    sizing = synth.config.sizing
    _, lake = synth.one("AWS::S3::Bucket", BucketName=synth.spec.bucket.name)
    rules = {r["Id"]: r for r in lake["LifecycleConfiguration"]["Rules"]}
    raw = rules["raw-to-colder-storage"]
    assert raw["Prefix"] == f"{synth.spec.bucket.raw_prefix}/"
    assert raw["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": sizing.raw_to_infrequent_access_days},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": sizing.raw_to_glacier_ir_days},
    ]
    results = rules["expire-athena-results"]
    assert results["Prefix"] == f"{synth.spec.bucket.athena_results_prefix}/"
    assert results["ExpirationInDays"] == sizing.athena_results_expire_days
    versions = rules["expire-old-versions"]
    assert "Prefix" not in versions
    assert versions["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": sizing.noncurrent_versions_expire_days
    }
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_candles_table_has_the_specs_keys_on_demand_pitr_sse_and_protection(synth: Synth) -> None:
    t = synth.spec.table
    table_id, table = synth.one("AWS::DynamoDB::Table", TableName=t.name)
    assert table["KeySchema"] == [
        {"AttributeName": t.partition_key, "KeyType": "HASH"},
        {"AttributeName": t.sort_key, "KeyType": "RANGE"},
    ]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        [
            {"AttributeName": t.partition_key, "AttributeType": "S"},
            {"AttributeName": t.sort_key, "AttributeType": "S"},
        ],
        key=lambda a: a["AttributeName"],
    )
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}  # the AWS managed KMS key
    assert table["DeletionProtectionEnabled"] is True
    assert synth.json["Resources"][table_id]["DeletionPolicy"] == "Retain"
