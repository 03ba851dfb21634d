"""A loopback HTTP proxy in front of the moto server that injects AWS faults by operation.

Point boto3 at it with ``AWS_ENDPOINT_URL=proxy.url``: every request is forwarded unchanged (method,
path, headers, body) to ``upstream`` and the answer relayed, unless a rule for the request's
operation says otherwise. An operation is named ``"<service>:<Operation>"``, the service being the
SigV4 signing name of the ``Authorization`` header's credential scope:

- JSON protocol (DynamoDB, SQS, Glue): the ``X-Amz-Target`` header, ``DynamoDB_20120810.UpdateItem``
  -> ``dynamodb:UpdateItem``, ``AmazonSQS.DeleteMessageBatch`` -> ``sqs:DeleteMessageBatch``;
- query protocol (SNS, STS, older SQS clients): the ``Action`` form field or query parameter;
- S3 (REST): the method and path, ``PUT /bucket/key`` -> ``s3:PutObject`` (see ``_s3_operation``).

Faults are what AWS answers, so botocore classifies them as it would the real ones:

- ``throttle(service)``: HTTP 400 ``ProvisionedThroughputExceededException`` (DynamoDB),
  ``RequestThrottled`` (SQS, with its ``x-amzn-query-error`` header), ``ThrottlingException`` (Glue and
  the rest); S3's is HTTP 503 ``SlowDown`` XML;
- ``server_error(service, 500 | 503)``: ``InternalServerError`` / ``InternalError`` /
  ``InternalServiceException`` / ``ServiceUnavailable`` in the service's own error shape.

``inject(operation, fault, schedule)`` adds a rule. Rules are tried in the order added; each counts
the calls it matches that no earlier rule took, and its schedule picks by that 1-based count
(``first(n)``, ``every(k)``, ``nth(2, 5)``), so it is deterministic however the client's threads
interleave. ``match`` narrows a rule to requests whose raw body holds every given
text (one DynamoDB key, say). ``lost=True`` forwards the request first, so AWS applies it, and then
answers the fault instead: the client cannot tell that its write happened (a lost response).

``hold(operation)`` blocks that operation's requests; ``Hold.arrived`` is set when the first one
comes, and ``Hold.release()`` closes their connections without an answer (``forward=True``: forwards
those whose client is still waiting; one that timed out meanwhile is dropped, not applied behind its
back). ``calls``, ``forwarded`` and ``injected`` count what the proxy saw and did.

    with FlakyAws(moto_endpoint) as proxy:
        proxy.inject("dynamodb:UpdateItem", throttle("dynamodb"), every(5))
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
"""

from __future__ import annotations

import http.client
import json
import re
import select
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Literal, Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes.loopback import LoopbackServer

FaultKind = Literal["throttle", "server-error"]
Schedule = Callable[[int], bool]

# Headers of one hop, or that the proxy sets itself (it sends whole bodies with their length).
_NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_JSON_SERVICES = {"DynamoDB": "dynamodb", "AmazonSQS": "sqs", "AWSGlue": "glue"}


# --- faults ---


@dataclass(frozen=True, slots=True)
class Fault:
    """An answer AWS gives instead of doing the request."""

    kind: FaultKind
    status: int
    code: str
    message: str
    service: str

    def response(self, content_type: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body in the protocol the request spoke (its ``content_type``)."""
        request_id = str(uuid.uuid4())
        if self.service == "s3":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{self.code}</Code><Message>{self.message}</Message>"
                f"<RequestId>{request_id}</RequestId><HostId>flaky-aws</HostId></Error>"
            ).encode()
            return (
                self.status,
                {"Content-Type": "application/xml", "x-amz-request-id": request_id},
                body,
            )
        if content_type.startswith("application/x-www-form-urlencoded"):  # query protocol
            side = "Sender" if self.status < 500 else "Receiver"
            body = (
                f"<ErrorResponse><Error><Type>{side}</Type><Code>{self.code}</Code>"
                f"<Message>{self.message}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            return self.status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body
        headers = {
            "Content-Type": content_type or "application/x-amz-json-1.0",
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": self.code,
        }
        type_name = self.code
        if self.service == "dynamodb":
            type_name = f"com.amazonaws.dynamodb.v20120810#{self.code}"
        elif self.service == "sqs":
            type_name = f"com.amazonaws.sqs#{self.code}"
            # SQS speaks JSON but keeps its query-era codes in this header (awsQueryCompatible).
            fault = "Sender" if self.status < 500 else "Receiver"
            headers["x-amzn-query-error"] = f"{self.code};{fault}"
        body = json.dumps({"__type": type_name, "message": self.message}).encode()
        return self.status, headers, body


_THROTTLES = {
    "dynamodb": (
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "sqs": (400, "RequestThrottled", "Request is throttled."),
    "s3": (503, "SlowDown", "Please reduce your request rate."),
}
_SERVER_ERRORS = {
    ("dynamodb", 500): ("InternalServerError", "Internal server error"),
    ("dynamodb", 503): ("ServiceUnavailable", "The service is currently unavailable."),
    ("sqs", 500): ("InternalError", "We encountered an internal error. Please try again."),
    ("sqs", 503): ("ServiceUnavailable", "The request has failed due to a temporary failure."),
    ("s3", 500): ("InternalError", "We encountered an internal error. Please try again."),
    ("s3", 503): ("ServiceUnavailable", "Service is unable to handle request."),
    ("glue", 500): ("InternalServiceException", "An internal service error occurred."),
}


def throttle(service: str) -> Fault:
    """The service's own throttling answer (``ThrottlingException`` for services not listed)."""
    status, code, message = _THROTTLES.get(service, (400, "ThrottlingException", "Rate exceeded"))
    return Fault("throttle", status, code, message, service)


def server_error(service: str, status: Literal[500, 503] = 500) -> Fault:
    """The service's own internal error (HTTP 500) or unavailability (HTTP 503)."""
    code, message = _SERVER_ERRORS.get(
        (service, status),
        ("InternalFailure", "The request processing has failed because of an unknown error.")
        if status == 500
        else ("ServiceUnavailable", "The request has failed due to a temporary failure."),
    )
    return Fault("server-error", status, code, message, service)


# --- schedules: which of a rule's matching calls (1-based) get the fault ---


def first(n: int) -> Schedule:
    """The first ``n`` calls."""
    return lambda call: call <= n


def every(k: int, *, offset: int = 0, times: int | None = None) -> Schedule:
    """Calls ``offset + k``, ``offset + 2k``, ... (``times`` of them at most)."""

    def due(call: int) -> bool:
        step, rest = divmod(call - offset, k)
        return call > offset and rest == 0 and (times is None or step <= times)

    return due


def nth(*calls: int) -> Schedule:
    """Exactly these calls."""
    chosen = frozenset(calls)
    return lambda call: call in chosen


# --- the proxy ---


@dataclass(frozen=True, slots=True)
class Injection:
    operation: str
    kind: FaultKind
    status: int
    lost: bool  # the request was forwarded (and applied) before the fault was answered


@dataclass
class _Rule:
    operation: str
    fault: Fault
    schedule: Schedule
    lost: bool
    match: tuple[bytes, ...]
    seen: int = 0  # matching calls that no earlier rule took


@dataclass
class Hold:
    """Requests of ``operation`` wait here until ``release``; ``arrived`` is set by the first."""

    operation: str
    _lift: Callable[[str], None]
    arrived: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    _released: threading.Event = field(default_factory=threading.Event)
    _forward: bool = False

    def release(self, *, forward: bool = False) -> None:
        """Let the held requests go, dropped (connection closed, no answer) or ``forward``-ed;
        later requests of the operation pass as usual."""
        self._lift(self.operation)
        self._forward = forward
        self._released.set()

    def wait(self) -> bool:
        """Block until released; whether to forward the request."""
        self._released.wait()
        return self._forward


class FlakyAws:
    """The proxy server and its rules; ``url`` is set while it runs (a context manager)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self._upstream = (parts.hostname, parts.port)
        self.url = ""
        self.calls: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.injections: list[Injection] = []
        self._rules: list[_Rule] = []
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None

    # --- what tests drive ---

    def inject(
        self,
        operation: str,
        fault: Fault,
        schedule: Schedule,
        *,
        lost: bool = False,
        match: tuple[str, ...] = (),
    ) -> None:
        """Answer ``fault`` to the calls of ``operation`` (whose body holds every ``match`` text)
        that ``schedule`` picks; the first rule that picks a call wins."""
        rule = _Rule(operation, fault, schedule, lost, tuple(m.encode() for m in match))
        with self._lock:
            self._rules.append(rule)

    def hold(self, operation: str) -> Hold:
        """Block every request of ``operation`` from now until the hold is released."""
        with self._lock:
            if operation in self._holds:
                raise ValueError(f"{operation} is already held")
            self._holds[operation] = hold = Hold(operation, self._lift)
        return hold

    def _lift(self, operation: str) -> None:
        with self._lock:
            self._holds.pop(operation, None)

    def injected(
        self,
        operation: str | None = None,
        kind: FaultKind | None = None,
        *,
        lost: bool | None = None,
    ) -> int:
        """How many faults were answered (of an operation, a kind, lost responses or not)."""
        with self._lock:
            return sum(
                1
                for i in self.injections
                if (operation is None or i.operation == operation)
                and (kind is None or i.kind == kind)
                and (lost is None or i.lost == lost)
            )

    # --- server life ---

    def __enter__(self) -> Self:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: botocore pools its connections
            server_version = "flaky-aws"
            # Headers and body go out in two writes: with Nagle's algorithm the second waits for
            # the client's delayed ACK, 40 ms a call.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                proxy._serve(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = LoopbackServer(Handler, "flaky-aws")
        self.url = self._server.url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            holds = list(self._holds.values())
        for hold in holds:
            hold.release()
        assert self._server is not None
        self._server.stop()

    # --- proxying ---

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        operation = operation_of(handler.command, handler.path, handler.headers, body)
        with self._lock:
            self.calls[operation] += 1
            hold = self._holds.get(operation)
            if hold is not None:
                hold.held += 1
                hold.arrived.set()
            # A held request is only held: no rule counts or answers it.
            rule = None if hold is not None else self._pick(operation, body)
        if hold is not None and (not hold.wait() or _client_gone(handler)):
            handler.close_connection = True  # dropped: the client sees the connection close
            return
        content_type = handler.headers.get("Content-Type", "")
        if rule is not None and not rule.lost:
            self._record(operation, rule)
            _answer(handler, *rule.fault.response(content_type))
            return
        try:
            status, headers, answer = self._forward(handler, body)
        except OSError:
            handler.close_connection = True
            return
        with self._lock:
            self.forwarded[operation] += 1
        if rule is not None:  # lost: applied upstream, but the client hears the fault
            self._record(operation, rule)
            _answer(handler, *rule.fault.response(content_type))
            return
        _answer(handler, status, headers, answer, head=handler.command == "HEAD")

    def _pick(self, operation: str, body: bytes) -> _Rule | None:
        """The first rule (in the order added) whose schedule picks the call; later rules do not
        see a call an earlier rule took."""
        for rule in self._rules:
            if rule.operation == operation and all(m in body for m in rule.match):
                rule.seen += 1
                if rule.schedule(rule.seen):
                    return rule
        return None

    def _record(self, operation: str, rule: _Rule) -> None:
        with self._lock:
            self.injections.append(
                Injection(operation, rule.fault.kind, rule.fault.status, rule.lost)
            )

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.putrequest(
                handler.command, handler.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in handler.headers.items():
                if name.lower() not in _NOT_RELAYED:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            answer = response.read()
            # A HEAD answer's Content-Length is the object's size, not this (empty) body's.
            keep = "content-length" if handler.command == "HEAD" else ""
            headers = {
                name: value
                for name, value in response.getheaders()
                if name.lower() not in _NOT_RELAYED or name.lower() == keep
            }
            return response.status, headers, answer
        finally:
            connection.close()


def operation_of(method: str, path: str, headers: Message, body: bytes) -> str:
    """``"<service>:<Operation>"`` of a signed AWS request (``"?"`` parts when unknown)."""
    get = headers.get
    scope = _SCOPE.search(get("Authorization", "") or "")
    service = scope.group(1) if scope else "?"
    target = get("X-Amz-Target", "") or ""
    if target:
        prefix, _, name = target.partition(".")
        service = _JSON_SERVICES.get(prefix.split("_")[0], service)
        return f"{service}:{name}"
    url = urlsplit(path)
    query = parse_qs(url.query, keep_blank_values=True)
    if "Action" not in query and get("Content-Type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        query = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if "Action" in query:
        return f"{service}:{query['Action'][0]}"
    if service == "s3":
        return f"s3:{_s3_operation(method, url.path, query, get('x-amz-copy-source'))}"
    return f"{service}:?"


def _s3_operation(
    method: str, path: str, query: dict[str, list[str]], copy_source: str | None
) -> str:
    """S3's REST operations by method and path (path-style addressing: ``/bucket/key``)."""
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets"
    if key:
        if method == "PUT":
            if "partNumber" in query:
                return "UploadPart"
            return "CopyObject" if copy_source else "PutObject"
        return {
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "DELETE": "DeleteObject",
            "POST": "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload",
        }.get(method, "?")
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, "?")


def _client_gone(handler: BaseHTTPRequestHandler) -> bool:
    """Whether the client closed its connection (it gave up waiting, or was killed)."""
    connection: socket.socket = handler.connection
    if not select.select([connection], [], [], 0)[0]:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body: bytes,
    *,
    head: bool = False,
) -> None:
    try:
        handler.send_response_only(status)  # upstream's Date and Server, not a second pair
        if not any(name.lower() == "date" for name in headers):
            handler.send_header("Date", handler.date_time_string())
        for name, value in headers.items():
            handler.send_header(name, value)
        if not any(name.lower() == "content-length" for name in headers):
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed, timed out)
        handler.close_connection = True
