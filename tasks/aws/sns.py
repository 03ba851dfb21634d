"""SNS adapter: the alerts topic, its subscriptions, and publishing one alert."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tasks.aws._errors import translate
from tasks.errors import ResourceMissing

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

MAX_SUBJECT_CHARS = 100  # SNS refuses longer subjects


def topic_arn(client: SNSClient, name: str) -> str:
    """The ARN of the topic called ``name`` (looked up, never created: a worker may not create)."""
    kwargs: dict[str, Any] = {}
    while True:
        with translate("sns", "ListTopics", f"topic {name!r}"):
            page = client.list_topics(**kwargs)
        for topic in page.get("Topics", []):
            arn = topic.get("TopicArn", "")
            if arn.rsplit(":", 1)[-1] == name:
                return arn
        if "NextToken" not in page:
            raise ResourceMissing(
                "sns",
                "ListTopics",
                "NotFound",
                f"no SNS topic {name!r}: run `candleflow provision` (or deploy the infrastructure)",
            )
        kwargs["NextToken"] = page["NextToken"]


def ensure_subscription(
    client: SNSClient,
    arn: str,
    protocol: str,
    endpoint: str,
    attributes: Mapping[str, str] | None = None,
) -> bool:
    """Subscribe ``endpoint`` unless it already is; True if a subscription was made."""
    kwargs: dict[str, Any] = {"TopicArn": arn}
    while True:
        with translate("sns", "ListSubscriptionsByTopic", arn):
            page = client.list_subscriptions_by_topic(**kwargs)
        for sub in page.get("Subscriptions", []):
            if (sub.get("Protocol"), sub.get("Endpoint")) == (protocol, endpoint):
                return False
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    with translate("sns", "Subscribe", f"{protocol} {endpoint}"):
        client.subscribe(
            TopicArn=arn,
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes=dict(attributes or {}),
            ReturnSubscriptionArn=True,
        )
    return True


def publish(
    client: SNSClient, arn: str, subject: str, message: str, attributes: Mapping[str, str]
) -> str:
    """Publish one message with String message attributes (for filter policies); returns its id."""
    with translate("sns", "Publish", arn):
        response = client.publish(
            TopicArn=arn,
            Subject=subject[:MAX_SUBJECT_CHARS],
            Message=message,
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            },
        )
    return response["MessageId"]
