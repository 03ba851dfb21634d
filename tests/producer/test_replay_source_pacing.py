"""Replaying captures: files merge in receive-time order and play at the recorded pace times ``speed``."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from producer.sources import ReplaySource
from tests.fakes.binance_ws import BTC_0808, ETH_0808, capture_frames
from tests.producer.builders import make_book_ticker_frame, make_trade_frame, write_capture

SECOND_NS = 1_000_000_000
START_NS = 1_723_161_254_087_896_568


class FakeTime:
    """A clock that only moves when the replay sleeps; remembers every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def collect(source: ReplaySource) -> list[str]:
    return [text async for text in source.frames()]


def two_captures(tmp_path: Path) -> tuple[Path, Path]:
    """BTC frames at 0 s, 2 s, 4 s; ETH frames at 1 s, 3 s (plus a depth snapshot line)."""
    btc = write_capture(
        tmp_path / "btc.gz",
        [(START_NS + i * 2 * SECOND_NS, make_trade_frame(trade_id=i)) for i in range(3)],
    )
    eth = write_capture(
        tmp_path / "eth.gz",
        [
            (START_NS + SECOND_NS, make_trade_frame(symbol="ETHUSDT", trade_id=10)),
            (START_NS + SECOND_NS + 1, '{"lastUpdateId":1,"bids":[],"asks":[]}'),
            (START_NS + 3 * SECOND_NS, make_book_ticker_frame("ETHUSDT")),
        ],
    )
    return btc, eth


def test_real_captures_merge_in_receive_time_order_at_full_speed() -> None:
    fake = FakeTime()
    source = ReplaySource([BTC_0808, ETH_0808], speed=None, clock=fake.clock, sleep=fake.sleep)
    frames = asyncio.run(collect(source))
    assert frames == [f.text for f in capture_frames(BTC_0808, ETH_0808)]
    assert fake.sleeps == [], "speed=None never pauses"


def test_speed_divides_the_recorded_gaps(tmp_path: Path) -> None:
    fake = FakeTime()
    source = ReplaySource(
        list(two_captures(tmp_path)), speed=4.0, clock=fake.clock, sleep=fake.sleep
    )
    frames = asyncio.run(collect(source))
    assert [json.loads(f)["stream"] for f in frames] == [
        "btcusdt@trade",
        "ethusdt@trade",
        "btcusdt@trade",
        "ethusdt@bookTicker",
        "btcusdt@trade",
    ]
    assert fake.sleeps == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert fake.now == pytest.approx(100.0 + 4 / 4.0)


def test_pacing_catches_up_instead_of_adding_the_consumers_delay(tmp_path: Path) -> None:
    fake = FakeTime()
    source = ReplaySource(
        list(two_captures(tmp_path)), speed=1.0, clock=fake.clock, sleep=fake.sleep
    )

    async def slow_consumer() -> None:
        async for _ in source.frames():
            fake.now += 0.4  # handling each frame takes 0.4 s of the 1 s gaps

    asyncio.run(slow_consumer())
    assert fake.sleeps == pytest.approx([0.6, 0.6, 0.6, 0.6])


def test_symbols_keep_only_their_streams(tmp_path: Path) -> None:
    source = ReplaySource(list(two_captures(tmp_path)), speed=None, symbols=["ETHUSDT"])
    streams = [json.loads(f)["stream"] for f in asyncio.run(collect(source))]
    assert streams == ["ethusdt@trade", "ethusdt@bookTicker"]


def test_stop_ends_the_replay_after_the_current_frame(tmp_path: Path) -> None:
    source = ReplaySource(list(two_captures(tmp_path)), speed=1.0)

    async def first_then_stop() -> list[str]:
        seen = []
        async for text in source.frames():
            seen.append(text)
            source.stop()
        return seen

    assert len(asyncio.run(asyncio.wait_for(first_then_stop(), 2))) == 1


def test_a_broken_capture_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_capture(tmp_path / "x.gz", [(START_NS, make_trade_frame())])
    with path.open("ab") as f:  # a second gzip member, read on as part of the same file
        f.write(gzip.compress(b"not-a-timestamp {}\n"))
    frames = asyncio.run(collect(ReplaySource([path], speed=None)))
    assert len(frames) == 1
    assert "x.gz line 2" in caplog.text
