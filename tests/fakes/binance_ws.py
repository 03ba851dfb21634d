"""A loopback Binance: a real websocket server that streams recorded combined-stream frames.

It speaks Binance's wire format: clients connect to ``/stream?streams=btcusdt@trade/ethusdt@trade`` and
receive text frames ``{"stream":"btcusdt@trade","data":{...}}`` copied byte for byte from the captures
in ``data/binance-ws``, only for the streams they asked for.

The recording plays like a live market shared by every connection: each frame is sent to every
connected client that subscribed to its stream. To let tests check that nothing is lost, the market
*waits* while no client is listening (dropped, silenced or not yet connected), so a producer that
reconnects receives every frame. Faults are opt-in: drop a connection after N frames (optionally
letting the market move on past the next K frames while nobody listens, so they are lost as on Binance),
go silent after N frames, ping clients. ``connections`` records each connection's life for assertions.

    async with fake_binance(capture_frames(BTC_0808)) as server:
        ...connect to server.url...
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

CAPTURES = Path(__file__).resolve().parents[2] / "data" / "binance-ws"
BTC_0808 = CAPTURES / "spot_btcusdt_20240808.gz"
ETH_0808 = CAPTURES / "spot_ethusdt_20240808.gz"
BTC_0809 = CAPTURES / "spot_btcusdt_20240809.gz"
ETH_0809 = CAPTURES / "spot_ethusdt_20240809.gz"

_STREAM_PREFIX = '{"stream":"'


@dataclass(frozen=True, slots=True)
class RecordedFrame:
    """One frame of a capture: its stream's name and its exact text."""

    recv_ns: int
    stream: str
    text: str


@lru_cache(maxsize=8)
def _read_capture(path: Path) -> tuple[RecordedFrame, ...]:
    frames = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            stamp, _, text = line.rstrip("\n").partition(" ")
            if text.startswith(_STREAM_PREFIX):  # the one REST snapshot line is not a stream frame
                stream = text[len(_STREAM_PREFIX) : text.index('"', len(_STREAM_PREFIX))]
                frames.append(RecordedFrame(int(stamp), stream, text))
    return tuple(frames)


def capture_frames(*paths: Path) -> list[RecordedFrame]:
    """Every stream frame of the capture files, merged in the order they were received."""
    frames = [f for path in paths for f in _read_capture(path)]
    return sorted(frames, key=lambda f: f.recv_ns)


@dataclass
class ConnectionLog:
    """One client connection as the server saw it (monotonic times)."""

    number: int
    streams: frozenset[str]
    opened_at: float
    closed_at: float | None = None
    frames_sent: int = 0
    dropped: bool = False
    silenced: bool = False
    close_code: int | None = None
    latency_s: float = 0.0  # last ping round trip; stays 0 until a client answers a ping


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    log: ConnectionLog


class FakeBinance:
    """The server's state; tests read ``url``, ``connections`` and ``finished``."""

    def __init__(
        self,
        frames: Sequence[RecordedFrame],
        *,
        drop_after: int | None,
        drops: int,
        lost_on_drop: int = 0,
        silent_after: int | None,
        silences: int,
        frame_delay_s: float,
    ) -> None:
        self.url = ""
        self.frames = list(frames)
        self.connections: list[ConnectionLog] = []
        self.finished = asyncio.Event()
        self.position = 0
        self._drop_after = drop_after
        self._drops_left = drops
        self._lost_on_drop = lost_on_drop
        self._losing = 0  # frames still to be played to nobody after a drop
        self.lost: list[RecordedFrame] = []  # the frames played to nobody, in order
        self._silent_after = silent_after
        self._silences_left = silences
        self._frame_delay_s = frame_delay_s
        self._clients: list[_Client] = []
        self._listening = asyncio.Event()

    @property
    def open_connections(self) -> list[ConnectionLog]:
        return [c.log for c in self._clients]

    def check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse what Binance refuses: another path, or no ``streams`` parameter."""
        url = urlsplit(request.path)
        streams = parse_qs(url.query).get("streams", [""])[0]
        if url.path != "/stream" or not streams:
            return Response(
                HTTPStatus.BAD_REQUEST.value,
                HTTPStatus.BAD_REQUEST.phrase,
                Headers([("Content-Type", "application/json")]),
                b'{"code":-1,"msg":"use /stream?streams=<symbol>@trade/..."}',
            )
        return None

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        streams = parse_qs(urlsplit(ws.request.path).query)["streams"][0].split("/")
        log = ConnectionLog(len(self.connections) + 1, frozenset(streams), time.monotonic())
        self.connections.append(log)
        client = _Client(ws, log)
        self._clients.append(client)
        self._listening.set()
        try:
            await ws.wait_closed()
        finally:
            log.closed_at = time.monotonic()
            log.close_code = ws.close_code
            log.latency_s = ws.latency
            self._forget(client)

    async def play(self) -> None:
        """Send each recorded frame to every listening subscriber, waiting while nobody listens."""
        for index, frame in enumerate(self.frames):
            self.position = index
            if self._losing > 0:  # the market moves on while the dropped client reconnects
                self._losing -= 1
                self.lost.append(frame)
                continue
            while not self._active():
                self._listening.clear()
                await self._listening.wait()
            for client in self._active():
                if frame.stream in client.log.streams:
                    await self._send(client, frame.text)
            if self._frame_delay_s:
                await asyncio.sleep(self._frame_delay_s)
            elif index % 64 == 0:
                await asyncio.sleep(0)
        self.position = len(self.frames)
        self.finished.set()

    def _active(self) -> list[_Client]:
        return [c for c in self._clients if not c.log.silenced and not c.log.dropped]

    async def _send(self, client: _Client, text: str) -> None:
        try:
            await client.ws.send(text)
        except ConnectionClosed:
            self._forget(client)
            return
        client.log.frames_sent += 1
        sent = client.log.frames_sent
        if self._drop_after is not None and sent >= self._drop_after and self._drops_left > 0:
            self._drops_left -= 1
            client.log.dropped = True
            self._losing += self._lost_on_drop
            # Close the TCP connection without a close frame, as a network failure would; what was
            # already written is still delivered first.
            assert client.ws.transport is not None
            client.ws.transport.close()
        elif self._silent_after is not None and sent >= self._silent_after and self._silences_left:
            self._silences_left -= 1
            client.log.silenced = True

    def _forget(self, client: _Client) -> None:
        if client in self._clients:
            self._clients.remove(client)


@asynccontextmanager
async def fake_binance(
    frames: Sequence[RecordedFrame],
    *,
    drop_after: int | None = None,
    drops: int = 1,
    lost_on_drop: int = 0,
    silent_after: int | None = None,
    silences: int = 1,
    frame_delay_s: float = 0.0,
    ping_interval_s: float | None = None,
    ping_timeout_s: float | None = None,
) -> AsyncIterator[FakeBinance]:
    """Serve ``frames`` on 127.0.0.1 (a free port); yields the server with its ``url`` set.

    ``drop_after``: cut a connection after it was sent that many frames (``drops`` times in all).
    ``lost_on_drop``: after each drop, play the next that many frames of the recording (every stream) to
    nobody, without waiting for a listener; they are lost to every client, as a live market's are to a
    reconnecting one, and listed in ``lost``. The default 0 loses nothing.
    ``silent_after``: stop sending to a connection after that many frames, keeping it open
    (``silences`` times in all). ``frame_delay_s`` paces the market. ``ping_interval_s`` makes the server
    ping clients and close those that do not answer within ``ping_timeout_s``.
    """
    fake = FakeBinance(
        frames,
        drop_after=drop_after,
        drops=drops,
        lost_on_drop=lost_on_drop,
        silent_after=silent_after,
        silences=silences,
        frame_delay_s=frame_delay_s,
    )
    async with serve(
        fake.handle,
        "127.0.0.1",
        0,
        process_request=fake.check_request,
        ping_interval=ping_interval_s,
        ping_timeout=ping_timeout_s,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}"
        player = asyncio.create_task(fake.play(), name="fake-binance-market")
        try:
            yield fake
        finally:
            player.cancel()
            await asyncio.gather(player, return_exceptions=True)
