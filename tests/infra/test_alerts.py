"""The alerts topic, its subscribers, and the queue alarms that publish to it."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synth


def test_topic_is_encrypted_with_a_key_cloudwatch_alarms_may_use(synth: Synth) -> None:
    _, topic = synth.one("AWS::SNS::Topic", TopicName=synth.spec.alerts.topic)
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.json["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [s["Action"] for s in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey"]]


def test_inbox_hears_only_the_topics_anomaly_alerts(synth: Synth) -> None:
    topic_id, _ = synth.one("AWS::SNS::Topic", TopicName=synth.spec.alerts.topic)
    inbox_id, inbox = synth.one("AWS::SQS::Queue", QueueName=synth.spec.alerts.inbox_queue)
    assert inbox["MessageRetentionPeriod"] == synth.spec.alerts.inbox_retention_s
    _, subscription = synth.one(
        "AWS::SNS::Subscription", Protocol="sqs", Endpoint={"Fn::GetAtt": [inbox_id, "Arn"]}
    )
    assert subscription["TopicArn"] == {"Ref": topic_id}
    # Anomaly alerts carry a `kind` attribute (tasks/core/alert_message.py); queue alarms do not.
    assert subscription["FilterPolicy"] == {"kind": [{"exists": True}]}
    _, policy = synth.one("AWS::SQS::QueuePolicy", Queues=[{"Ref": inbox_id}])
    (allow,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}}


@pytest.mark.parametrize(("protocol", "field"), [("email", "emails"), ("sms", "sms_numbers")])
def test_people_subscribed_are_the_settings(synth: Synth, protocol: str, field: str) -> None:
    endpoints = [
        s["Endpoint"] for s in synth.props("AWS::SNS::Subscription") if s["Protocol"] == protocol
    ]
    assert endpoints == list(getattr(synth.spec.alerts, field))
    assert endpoints  # the default test settings name one of each


@pytest.mark.parametrize("which", ["queue", "samples_queue"])
def test_queue_age_and_dead_letters_alarm_on_the_topic(synth: Synth, which: str) -> None:
    spec = getattr(synth.spec, which)
    topic_id, _ = synth.one("AWS::SNS::Topic", TopicName=synth.spec.alerts.topic)
    queue_id, _ = synth.one("AWS::SQS::Queue", QueueName=spec.name)
    dlq_id, _ = synth.one("AWS::SQS::Queue", QueueName=spec.dlq_name)
    alarms = synth.props("AWS::CloudWatch::Alarm")

    def alarm_on(queue_id: str, metric: str) -> dict[str, object]:
        (found,) = [
            a
            for a in alarms
            if a["MetricName"] == metric
            and a["Dimensions"]
            == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
        ]
        return found

    age = alarm_on(queue_id, "ApproximateAgeOfOldestMessage")
    assert age["Threshold"] == synth.config.sizing.queue_age_alarm_s
    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    dead = alarm_on(dlq_id, "ApproximateNumberOfMessagesVisible")
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    for alarm in (age, dead):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["TreatMissingData"] == "notBreaching"
