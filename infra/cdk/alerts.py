"""Alerts: the SNS topic, who hears it, and the CloudWatch alarms that speak to it.

The anomaly flow publishes to the topic; its SQS inbox (``candleflow alerts``) takes only those
messages (they carry a ``kind`` attribute), while e-mail and SMS subscribers also get the queue alarms:
the trades and samples queues' oldest message too old, a dead-letter queue not empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.cdk.config import Sizing
from infra.cdk.data import DataStores, QueuePair, encrypted_queue
from infra.spec import QueueSpec, ResourceSpec


@dataclass(frozen=True, slots=True)
class Alerts:
    topic: sns.Topic
    inbox: sqs.Queue
    alarms: tuple[cloudwatch.Alarm, ...]


def alerts(
    scope: Construct, spec: ResourceSpec, sizing: Sizing, key: kms.IKey, stores: DataStores
) -> Alerts:
    a = spec.alerts
    topic = sns.Topic(scope, "AlertsTopic", topic_name=a.topic, master_key=key, enforce_ssl=True)
    inbox = encrypted_queue(
        scope, "AlertsInbox", a.inbox_queue, Duration.seconds(a.inbox_retention_s)
    )
    # Subscribing adds the inbox's policy: sqs:SendMessage from SNS, only from this topic.
    topic.add_subscription(
        subscriptions.SqsSubscription(
            inbox, filter_policy={"kind": sns.SubscriptionFilter.exists_filter()}
        )
    )
    for email in a.emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    for number in a.sms_numbers:
        topic.add_subscription(subscriptions.SmsSubscription(number))
    alarms = [
        *_queue_alarms(scope, "Trades", spec.queue, stores.trades, sizing),
        *_queue_alarms(scope, "SpreadSamples", spec.samples_queue, stores.samples, sizing),
    ]
    for alarm in alarms:
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))
    return Alerts(topic, inbox, tuple(alarms))


def _queue_alarms(
    scope: Construct, construct_id: str, spec: QueueSpec, pair: QueuePair, sizing: Sizing
) -> list[cloudwatch.Alarm]:
    minute = Duration.minutes(1)
    late = cloudwatch.Alarm(
        scope,
        f"{construct_id}AgeAlarm",
        alarm_name=f"{spec.name}-oldest-message-age",
        alarm_description=(
            f"Messages wait in {spec.name} longer than {sizing.queue_age_alarm_s} s: the ingest is "
            "falling behind or stopped (is the worker service running? add workers)."
        ),
        metric=pair.queue.metric_approximate_age_of_oldest_message(
            period=minute, statistic=cloudwatch.Stats.MAXIMUM
        ),
        threshold=sizing.queue_age_alarm_s,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=5,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    dead = cloudwatch.Alarm(
        scope,
        f"{construct_id}DlqAlarm",
        alarm_name=f"{spec.dlq_name}-not-empty",
        alarm_description=(
            f"Messages reached the dead-letter queue {spec.dlq_name}: each names its error in the "
            "candleflow-error attribute."
        ),
        metric=pair.dlq.metric_approximate_number_of_messages_visible(
            period=minute, statistic=cloudwatch.Stats.MAXIMUM
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    return [late, dead]
