"""Packing trades into bodies: never over the size limit, nothing lost or reordered, flushed by age."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.batching import Body, OversizeTrade, Packer
from producer.parse import TradeFrame
from tasks.core.contract import CONTENT_ENCODING, decode_body
from tests.fakes.binance_ws import BTC_0808, ETH_0808
from tests.producer.builders import make_trade, make_trade_data
from tests.producer.support import trade_frames, trade_line

MAX_RAW = 16 * 1024 * 1024


def make_packer(
    *, max_message_bytes: int = 1024, gzip_min_bytes: int = 4096, flush_interval_s: float = 1.0
) -> Packer:
    return Packer(max_message_bytes, gzip_min_bytes, flush_interval_s, max_raw_bytes=MAX_RAW)


def decoded_lines(bodies: list[Body]) -> list[bytes]:
    lines: list[bytes] = []
    for body in bodies:
        content_encoding = body.encoded.attributes.get(CONTENT_ENCODING)
        lines += decode_body(body.encoded.body, content_encoding, MAX_RAW).split(b"\n")
    return lines


def pack(packer: Packer, trades: list[TradeFrame], now: float = 0.0) -> list[Body]:
    bodies = [b for t in trades for b in packer.add(t, now)]
    return bodies + packer.flush_all()


trade_lines = st.builds(
    make_trade_data,
    trade_id=st.integers(min_value=0, max_value=2**40),
    price=st.decimals(min_value=0, max_value=10**6, places=2).map(lambda d: f"{d:.8f}"),
    quantity=st.decimals(min_value=0, max_value=100, places=5).map(lambda d: f"{d:.8f}"),
)
# Printable ASCII without newlines; random text barely compresses, which forces splits.
noise_lines = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=700)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.one_of(trade_lines, noise_lines), max_size=120),
    max_message_bytes=st.integers(min_value=1024, max_value=8192),
    gzip_min_bytes=st.integers(min_value=0, max_value=10_000),
)
def test_bodies_stay_within_the_limit_and_decode_to_the_input_lines_in_order(
    lines: list[str], max_message_bytes: int, gzip_min_bytes: int
) -> None:
    packer = make_packer(max_message_bytes=max_message_bytes, gzip_min_bytes=gzip_min_bytes)
    trades = [make_trade(trade_id=i, line=line.encode()) for i, line in enumerate(lines)]
    bodies = pack(packer, trades)
    assert all(b.size <= max_message_bytes for b in bodies)
    assert decoded_lines(bodies) == [t.line for t in trades]
    assert sum(b.trades for b in bodies) == len(trades)


def test_gzip_lets_a_body_carry_more_raw_trades_than_the_limit() -> None:
    packer = make_packer(max_message_bytes=16 * 1024, gzip_min_bytes=1024)
    trades = [
        make_trade(trade_id=i, line=trade_line(f)) for i, f in enumerate(trade_frames(BTC_0808))
    ]
    bodies = pack(packer, trades)
    assert decoded_lines(bodies) == [t.line for t in trades]
    assert all(b.size <= 16 * 1024 and b.encoded.gzipped for b in bodies)
    full = bodies[1:-1]  # the first is packed before any ratio is known; the last is a remainder
    assert min(b.raw_bytes for b in full) > 2 * 16 * 1024
    assert packer.raw_target > 16 * 1024


def test_small_bodies_are_sent_as_plain_ndjson() -> None:
    bodies = pack(make_packer(gzip_min_bytes=4096), [make_trade(trade_id=i) for i in range(3)])
    (body,) = bodies
    assert not body.encoded.gzipped and body.encoded.attributes == {}
    assert body.encoded.body.count("\n") == 2


def test_a_body_is_closed_once_its_oldest_trade_waited_the_flush_interval() -> None:
    packer = make_packer(max_message_bytes=64 * 1024, flush_interval_s=1.0)
    assert packer.add(make_trade(trade_id=1), now=10.0) == []
    assert packer.deadline == 11.0
    assert packer.add(make_trade(trade_id=2), now=10.6) == []
    assert packer.flush_due(10.99) == []
    (body,) = packer.flush_due(11.0)
    assert body.trades == 2 and packer.deadline is None and packer.pending_trades == 0
    assert packer.flush_due(100.0) == []
    (late,) = packer.add(make_trade(trade_id=3), now=200.0) + packer.add(
        make_trade(trade_id=4), now=201.5
    )
    assert late.trades == 2, "adding after the deadline closes the body at once"


def test_a_body_names_its_symbols_and_trade_id_ranges() -> None:
    trades = [make_trade(trade_id=i) for i in (7, 5, 9)] + [
        make_trade(symbol="ETHUSDT", trade_id=3)
    ]
    (body,) = pack(make_packer(max_message_bytes=64 * 1024), trades)
    assert body.describe() == "4 trades: BTCUSDT 5-9, ETHUSDT 3-3"
    assert body.last_event_time_ms == max(t.event_time_ms for t in trades)


def test_both_real_captures_pack_within_the_default_limit() -> None:
    packer = make_packer(max_message_bytes=240 * 1024, gzip_min_bytes=4096)
    frames = trade_frames(BTC_0808, ETH_0808)
    trades = [make_trade(trade_id=i, line=trade_line(f)) for i, f in enumerate(frames)]
    bodies = pack(packer, trades)
    assert decoded_lines(bodies) == [t.line for t in trades]
    assert all(b.size <= 240 * 1024 for b in bodies)


def test_a_trade_too_big_for_any_message_is_refused() -> None:
    packer = make_packer(max_message_bytes=1024, gzip_min_bytes=10**6)
    with pytest.raises(OversizeTrade, match="CANDLEFLOW_MAX_MESSAGE_BYTES"):
        packer.add(make_trade(line=b"x" * 2000), now=0.0)
