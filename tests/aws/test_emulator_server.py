"""The emulator's HTTP server keeps connections alive, frames every answer exactly, and closes them
all when stopped (``infra.moto_server``)."""

from __future__ import annotations

import http.client
import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from infra.emulator import emulator
from infra.moto_server import MotoServer
from tests.conftest import free_port

_JSON = "application/x-amz-json-1.0"


def _auth(service: str) -> str:
    """An Authorization header moto reads the caller from (it checks no signature)."""
    return (
        f"AWS4-HMAC-SHA256 Credential=testing/20240808/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )


def _list_tables(conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
    conn.request(
        "POST",
        "/",
        body=b"{}",
        headers={
            "Content-Type": _JSON,
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": _auth("dynamodb"),
        },
    )
    return conn.getresponse()


def _connection(endpoint: str) -> http.client.HTTPConnection:
    host, port = endpoint.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


@pytest.fixture
def private_emulator() -> Iterator[tuple[MotoServer, str]]:
    port = free_port()
    server = emulator("127.0.0.1", port)
    server.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_requests_share_one_connection_and_each_answer_is_framed(moto_endpoint: str) -> None:
    conn = _connection(moto_endpoint)
    try:
        first = _list_tables(conn)
        assert first.status == 200, first.read()
        assert b"TableNames" in first.read()
        sock = conn.sock
        assert sock is not None, "the emulator closed the connection after one request"
        assert first.getheader("Connection") is None
        for _ in range(3):
            again = _list_tables(conn)
            body = again.read()
            assert again.status == 200, body
            assert int(again.getheader("Content-Length") or -1) == len(body)
        assert conn.sock is sock, "a later request needed a new connection"
    finally:
        conn.close()


def test_a_body_the_app_does_not_read_does_not_leak_into_the_next_request(
    moto_endpoint: str,
) -> None:
    conn = _connection(moto_endpoint)
    try:
        conn.request("GET", "/moto-api/data.json", body=b"x" * 70_000)  # ignored by moto
        ignored = conn.getresponse()
        ignored.read()
        assert ignored.status == 200
        answer = _list_tables(conn)
        assert answer.status == 200, answer.read()
        assert b"TableNames" in answer.read()
    finally:
        conn.close()


def test_chunked_uploads_and_head_answers_keep_their_bytes_and_lengths(
    moto_endpoint: str,
) -> None:
    s3 = boto3.client("s3", config=Config(retries={"max_attempts": 1}))
    bucket = f"server-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    conn = _connection(moto_endpoint)
    parts = [os.urandom(1000), os.urandom(70_000), b"end"]
    try:
        auth = {"Authorization": _auth("s3")}
        conn.request(
            "PUT", f"/{bucket}/chunked", body=iter(parts), encode_chunked=True, headers=auth
        )
        put = conn.getresponse()
        assert put.status == 200, put.read()
        put.read()
        conn.request("HEAD", f"/{bucket}/chunked", headers=auth)
        head = conn.getresponse()
        assert head.read() == b""
        assert head.status == 200
        assert int(head.getheader("Content-Length") or -1) == sum(len(p) for p in parts)
        conn.request("GET", f"/{bucket}/chunked", headers=auth)
        got = conn.getresponse()
        assert got.read() == b"".join(parts)
    finally:
        conn.close()
    # boto3 sends "Expect: 100-continue" for a body this big, then waits for the go-ahead.
    big = os.urandom(3 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == len(big)


def test_stopping_closes_open_connections_and_refuses_new_ones(
    private_emulator: tuple[MotoServer, str],
) -> None:
    server, endpoint = private_emulator
    conn = _connection(endpoint)
    try:
        answer = _list_tables(conn)
        answer.read()
        assert answer.status == 200
        assert conn.sock is not None
        server.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            _list_tables(conn).read()
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError):
        _list_tables(_connection(endpoint))


def test_a_client_asking_to_close_gets_the_connection_closed(moto_endpoint: str) -> None:
    conn = _connection(moto_endpoint)
    try:
        conn.request("GET", "/moto-api/data.json", headers={"Connection": "close"})
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200
        assert answer.getheader("Connection") == "close"
        assert conn.sock is None  # http.client closed it as told
    finally:
        conn.close()
