"""Least privilege: every statement names its actions and resources; each role does one job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.cdk.iam import UNSCOPED_ACTIONS
from tests.infra.conftest import Synth

ECS_TASKS = {"Service": "ecs-tasks.amazonaws.com"}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synth: Synth, role_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Statements of the IAM policies (of one role, or all): identity policies, not key policies."""
    for policy in synth.props("AWS::IAM::Policy"):
        if role_id is None or {"Ref": role_id} in policy["Roles"]:
            yield from policy["PolicyDocument"]["Statement"]
    for role_key, role in synth.resources("AWS::IAM::Role").items():
        if role_id is None or role_key == role_id:
            for inline in role["Properties"].get("Policies", []):
                yield from inline["PolicyDocument"]["Statement"]


def _actions(synth: Synth, role_id: str) -> set[str]:
    return {a for s in _statements(synth, role_id) for a in _listed(s["Action"])}


def _task_role(synth: Synth, component: str) -> str:
    """The logical id of a service's task role, found through its task definition."""
    _, task = synth.one("AWS::ECS::TaskDefinition", Family=synth.config.names.service(component))
    return str(task["TaskRoleArn"]["Fn::GetAtt"][0])


def test_no_statement_grants_a_wildcard_action(synth: Synth) -> None:
    for statement in _statements(synth):
        for action in _listed(statement["Action"]):
            assert "*" not in action, statement


def test_only_actions_aws_cannot_scope_are_granted_on_every_resource(synth: Synth) -> None:
    for statement in _statements(synth):
        if "*" in _listed(statement["Resource"]):
            assert set(_listed(statement["Action"])) <= UNSCOPED_ACTIONS, statement


def test_no_role_uses_a_managed_policy(synth: Synth) -> None:
    assert all("ManagedPolicyArns" not in r for r in synth.props("AWS::IAM::Role"))


@pytest.mark.parametrize("component", ["producer", "sampler", "worker", "api"])
def test_task_roles_are_for_ecs_tasks_only(synth: Synth, component: str) -> None:
    role = synth.json["Resources"][_task_role(synth, component)]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert (statement["Principal"], statement["Action"]) == (ECS_TASKS, "sts:AssumeRole")


def test_producer_and_sampler_may_only_send_to_the_two_queues(synth: Synth) -> None:
    trades, _ = synth.one("AWS::SQS::Queue", QueueName=synth.spec.queue.name)
    samples, _ = synth.one("AWS::SQS::Queue", QueueName=synth.spec.samples_queue.name)
    role = _task_role(synth, "producer")
    assert _task_role(synth, "sampler") == role
    (statement,) = _statements(synth, role)
    assert set(_listed(statement["Action"])) == {
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
    }
    assert sorted(r["Fn::GetAtt"][0] for r in statement["Resource"]) == sorted([trades, samples])


def test_worker_cannot_delete_the_bucket_the_table_or_objects(synth: Synth) -> None:
    actions = _actions(synth, _task_role(synth, "worker"))
    assert not {a for a in actions if a.startswith(("s3:Delete", "s3:PutBucket"))}
    assert "dynamodb:DeleteTable" not in actions
    assert not {
        a
        for a in actions
        if a.startswith(("glue:Delete", "sqs:Delete")) and a != "sqs:DeleteMessage"
    }
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "sns:Publish"} <= actions


def test_worker_touches_only_its_table_bucket_and_topic(synth: Synth) -> None:
    table, _ = synth.one("AWS::DynamoDB::Table", TableName=synth.spec.table.name)
    lake, _ = synth.one("AWS::S3::Bucket", BucketName=synth.spec.bucket.name)
    topic, _ = synth.one("AWS::SNS::Topic", TopicName=synth.spec.alerts.topic)
    for statement in _statements(synth, _task_role(synth, "worker")):
        services = {a.split(":")[0] for a in _listed(statement["Action"])}
        text = str(statement["Resource"])
        if services == {"dynamodb"}:
            assert statement["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
        if services == {"s3"}:
            assert lake in text
        if services == {"sns"} and statement["Resource"] != "*":
            assert statement["Resource"] == {"Ref": topic}


def test_api_role_only_reads(synth: Synth) -> None:
    table, _ = synth.one("AWS::DynamoDB::Table", TableName=synth.spec.table.name)
    role = _task_role(synth, "api")
    assert _actions(synth, role) == {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "cloudwatch:GetMetricStatistics",
    }
    for statement in _statements(synth, role):
        if str(statement["Action"]).startswith("['dynamodb"):
            assert statement["Resource"] == {"Fn::GetAtt": [table, "Arn"]}


def test_only_the_workers_execution_role_reads_the_prefect_api_key(synth: Synth) -> None:
    secret, _ = synth.one(
        "AWS::SecretsManager::Secret", Name=synth.config.names.prefect_api_key_secret
    )
    readers = set()
    for role_id in synth.resources("AWS::IAM::Role"):
        for statement in _statements(synth, role_id):
            if "secretsmanager:GetSecretValue" in _listed(statement["Action"]):
                assert statement["Resource"] == {"Ref": secret}
                readers.add(role_id)
    _, worker_task = synth.one(
        "AWS::ECS::TaskDefinition", Family=synth.config.names.service("worker")
    )
    assert readers == {worker_task["ExecutionRoleArn"]["Fn::GetAtt"][0]}
