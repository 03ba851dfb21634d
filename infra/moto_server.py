"""moto's WSGI app behind werkzeug's threaded server, with HTTP/1.1 keep-alive.

moto's own server (``ThreadedMotoServer``) answers every request with ``Connection: close``: each
call pays a TCP connect and close on both sides and a new server thread, and after each response
the thread waits up to 10 ms for stray request bytes before closing. On 2 cores that was ~30% of the
emulator's CPU per DynamoDB PutItem. ``KeepAliveHandler`` keeps the connection open between
requests, as AWS's endpoints do: it reads each request's body whole before the app sees it (so the
next request starts exactly where this one ends, whatever the app read), answers with an exact
``Content-Length``, and turns Nagle's algorithm off so a response is never held back waiting for an
acknowledgement. A connection idle for ``IDLE_TIMEOUT_S`` is closed; ``MotoServer.stop`` closes every
open connection too, so a stopped emulator refuses calls as a stopped moto server does.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import ThreadedWSGIServer

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 60.0
_NO_BODY = frozenset({204, 304})
_FRAMING = frozenset({"connection", "content-length", "transfer-encoding"})


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (it keeps underscored header names), serving many requests per
    connection."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        super().finish()

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):  # chunked: read to the final chunk
            body = stream.read()
        else:
            body = self.rfile.read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            status, headers, payload = self._call_app(environ)
        except Exception:
            log.exception("the emulator failed to answer %r", self.requestline)
            self.close_connection = True
            status, headers, payload = "500 INTERNAL SERVER ERROR", [], b"emulator error"
        self._respond(status, headers, payload)

    def _call_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return chunks.append

        result = self.server.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return status, headers, b"".join(chunks)

    def _respond(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        bodyless = self.command == "HEAD" or code in _NO_BODY or code < 200
        self.send_response(code, reason)
        for name, value in headers:
            # A HEAD answer keeps the length of what a GET would send; every other length is ours.
            if name.lower() not in _FRAMING or (bodyless and name.lower() == "content-length"):
                self.send_header(name, value)
        if not bodyless:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not bodyless and payload:
            self.wfile.write(payload)


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server, knowing its open connections so it can close them."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        super().__init__(host, port, app, handler=KeepAliveHandler)
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()

    def opened(self, connection: socket.socket) -> None:
        with self._live_lock:
            self._live.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._live_lock:
            self._live.discard(connection)

    def close_connections(self) -> None:
        with self._live_lock:
            live, self._live = self._live, set()
        for connection in live:
            with contextlib.suppress(OSError):  # closed meanwhile
                connection.shutdown(socket.SHUT_RDWR)


class MotoServer:
    """moto on ``host:port`` in a background thread: ``start``, ``stop``, ``get_host_and_port`` as
    moto's ``ThreadedMotoServer``."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = _Server(self._host, self._port, DomainDispatcherApplication(create_backend_app))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the emulator is not started: call start() first")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop accepting, and close every open connection (answers in flight are cut off)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()
