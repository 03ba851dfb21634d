"""candleflow's errors. Each names the input or setting a person should fix.

CandleflowError
├── ConfigError          a setting or resource is missing or wrong (names the setting)
├── AwsError             an AWS call failed; carries the service, operation and AWS error code
│   └── ResourceMissing  the resource does not exist: run `candleflow provision`
├── ConflictError        a conditional write lost a race; the caller re-reads and retries
├── DecodeError          an SQS message body breaks the producer contract (goes to the DLQ)
└── QueryError           a SQL query failed, was cancelled or ran past its deadline (names the engine)
"""

from __future__ import annotations


class CandleflowError(Exception):
    """Base of every error candleflow raises on purpose."""


class ConfigError(CandleflowError):
    pass


class AwsError(CandleflowError):
    def __init__(self, service: str, operation: str, code: str, message: str) -> None:
        super().__init__(f"{service}.{operation} failed with {code}: {message}")
        self.service = service
        self.operation = operation
        self.code = code


class ResourceMissing(AwsError):
    pass


class ConflictError(CandleflowError):
    pass


class DecodeError(CandleflowError):
    pass


class QueryError(CandleflowError):
    pass
