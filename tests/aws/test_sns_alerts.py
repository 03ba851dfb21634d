from __future__ import annotations

import json

import pytest

from infra.provision import provision
from infra.spec import resource_spec
from tasks.aws import sns, sqs
from tasks.errors import ResourceMissing
from tests.conftest import AwsEnv


def subscriptions(env: AwsEnv, arn: str) -> list[tuple[str, str]]:
    subs = env.clients.sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    return sorted((s["Protocol"], s["Endpoint"]) for s in subs)


def test_a_published_alert_reaches_the_inbox_with_its_subject_and_filterable_attributes(
    aws: AwsEnv,
) -> None:
    arn = sns.topic_arn(aws.clients.sns, aws.spec.alerts.topic)
    assert arn == aws.resources.topic_arn
    body = json.dumps({"symbol": "BTCUSDT", "rule": "price_move"})
    sns.publish(
        aws.clients.sns,
        arn,
        "BTCUSDT up 5.2% in 5 min",
        body,
        {"symbol": "BTCUSDT", "severity": "critical"},
    )
    [message] = sqs.receive(aws.clients.sqs, aws.resources.alerts_inbox_url, 10, 1)
    envelope = json.loads(message.body)
    assert envelope["Subject"] == "BTCUSDT up 5.2% in 5 min"
    assert json.loads(envelope["Message"]) == {"symbol": "BTCUSDT", "rule": "price_move"}
    assert {k: v["Value"] for k, v in envelope["MessageAttributes"].items()} == {
        "symbol": "BTCUSDT",
        "severity": "critical",
    }


def test_provisioning_again_keeps_one_inbox_subscription_and_adds_people_from_the_settings(
    aws: AwsEnv,
) -> None:
    arn = aws.resources.topic_arn
    [(protocol, _)] = subscriptions(aws, arn)
    assert protocol == "sqs"
    settings = aws.settings.model_copy(
        update={"alert_emails": ["ops@example.com"], "alert_sms_numbers": ["+61412345678"]}
    )
    for _ in range(2):
        provision(aws.clients, resource_spec(settings))
    assert [p for p, _ in subscriptions(aws, arn)] == ["email", "sms", "sqs"]
    assert ("email", "ops@example.com") in subscriptions(aws, arn)


def test_a_missing_topic_names_the_command_that_creates_it(aws: AwsEnv) -> None:
    with pytest.raises(ResourceMissing, match="candleflow provision"):
        sns.topic_arn(aws.clients.sns, "no-such-topic")
