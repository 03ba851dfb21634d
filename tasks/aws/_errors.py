"""Turning botocore's ``ClientError`` into candleflow's errors at the adapter boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError

from tasks.errors import AwsError, ResourceMissing

MISSING_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
        "ResourceNotFoundException",
        "EntityNotFoundException",
        "NotFound",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def condition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` (as raised through ``translate``) is a failed DynamoDB write condition."""
    cause = exc.__cause__
    return isinstance(cause, ClientError) and error_code(cause) == "ConditionalCheckFailedException"


def cancellation_reasons(exc: BaseException) -> list[str]:
    """The per-action codes of a cancelled DynamoDB transaction (as raised through ``translate``),
    in the order of its actions ("None" for an action that was not the cause); [] for any other
    error."""
    cause = exc.__cause__
    if not isinstance(cause, ClientError) or error_code(cause) != "TransactionCanceledException":
        return []
    reasons = cause.response.get("CancellationReasons") or []
    return [str(r.get("Code", "None")) for r in reasons]


@contextmanager
def translate(service: str, operation: str, resource: str) -> Iterator[None]:
    """Re-raise ``ClientError`` as ``AwsError``; a missing resource says how to create it."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if code in MISSING_CODES:
            raise ResourceMissing(
                service,
                operation,
                code,
                f"{resource} does not exist; run `candleflow provision`",
            ) from exc
        raise AwsError(service, operation, code, f"{resource}: {message}") from exc
