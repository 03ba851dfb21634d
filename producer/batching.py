"""Packing trade lines into SQS message bodies by size and age. Pure: the caller passes the time in.

A body must stay within ``max_message_bytes`` *after* encoding, but a gzipped body's size is only known
once it is compressed. The packer therefore fills bodies by raw size against a target derived from the
compression ratio it has observed so far (starting at 1:1, which is always safe because the contract never
makes a body bigger than its raw NDJSON), and splits a body in half when it still encodes too large.
A body is also closed once its oldest trade has waited ``flush_interval_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from producer.parse import TradeFrame
from tasks.core.contract import EncodedBody, encode_body

# Aim a little under the limit so a slightly worse ratio than the estimate rarely forces a split.
_TARGET_FILL = 0.85
# Weight of the newest observation in the compression-ratio estimate.
_RATIO_WEIGHT = 0.5


class OversizeTrade(ValueError):
    """A single trade line that cannot fit in one message even alone; it is never sent."""


@dataclass(frozen=True, slots=True)
class IdRange:
    """The lowest and highest trade id of one symbol in a body (inclusive), for gap reports."""

    symbol: str
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.symbol} {self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class Body:
    """One encoded SQS message body and what it carries, so a lost body can be named in the logs."""

    encoded: EncodedBody
    trades: int
    raw_bytes: int
    id_ranges: tuple[IdRange, ...]
    last_event_time_ms: int

    @property
    def size(self) -> int:
        return len(self.encoded.body.encode("utf-8"))

    def describe(self) -> str:
        """``'12 trades: BTCUSDT 3735683259-3735683270'`` for log lines."""
        return f"{self.trades} trades: " + ", ".join(str(r) for r in self.id_ranges)


class Packer:
    """Buffers trades and hands out bodies that respect the size limit and the flush interval."""

    def __init__(
        self,
        max_message_bytes: int,
        gzip_min_bytes: int,
        flush_interval_s: float,
        max_raw_bytes: int,
    ) -> None:
        if max_raw_bytes < max_message_bytes:
            raise ValueError("max_raw_bytes must be at least max_message_bytes")
        self.max_message_bytes = max_message_bytes
        self.gzip_min_bytes = gzip_min_bytes
        self.flush_interval_s = flush_interval_s
        self.max_raw_bytes = max_raw_bytes
        self._ratio = 1.0  # encoded / raw bytes; 1.0 is safe before anything was compressed
        self._ratio_known = False
        self._trades: list[TradeFrame] = []
        self._raw = 0
        self._first_at: float | None = None

    @property
    def pending_trades(self) -> int:
        return len(self._trades)

    @property
    def deadline(self) -> float | None:
        """When the buffered trades must be flushed by age, or ``None`` with nothing buffered."""
        return None if self._first_at is None else self._first_at + self.flush_interval_s

    @property
    def raw_target(self) -> int:
        """Raw NDJSON bytes a body is filled to, from the compression ratio seen so far."""
        estimate = int(self.max_message_bytes * _TARGET_FILL / self._ratio)
        return min(self.max_raw_bytes, max(self.max_message_bytes, estimate))

    def add(self, trade: TradeFrame, now: float) -> list[Body]:
        """Buffer a trade; returns the bodies this closed (possibly none)."""
        size = len(trade.line)
        if size > self.max_message_bytes and self._too_big([trade.line]):
            raise OversizeTrade(
                f"{trade.symbol} trade {trade.trade_id} is {size} bytes, more than a whole message "
                f"may hold (setting CANDLEFLOW_MAX_MESSAGE_BYTES={self.max_message_bytes})"
            )
        ready: list[Body] = []
        if self._trades and self._raw + 1 + size > self.raw_target:
            ready = self.flush_all()
        if self._first_at is None:
            self._first_at = now
        self._raw += size + (1 if self._trades else 0)
        self._trades.append(trade)
        return ready + self.flush_due(now)

    def flush_due(self, now: float) -> list[Body]:
        """The buffered trades as bodies if the oldest has waited ``flush_interval_s``, else nothing."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        return self.flush_all()

    def flush_all(self) -> list[Body]:
        """Everything buffered, as bodies (used by the age flush and on shutdown)."""
        trades, self._trades, self._raw, self._first_at = self._trades, [], 0, None
        return self._encode(trades) if trades else []

    def _encode(self, trades: list[TradeFrame]) -> list[Body]:
        lines = [t.line for t in trades]
        encoded = encode_body(lines, self.gzip_min_bytes)
        raw_bytes = sum(len(line) for line in lines) + len(lines) - 1
        if encoded.gzipped:
            observed = len(encoded.body) / raw_bytes
            if self._ratio_known:
                self._ratio = _RATIO_WEIGHT * observed + (1 - _RATIO_WEIGHT) * self._ratio
            else:
                self._ratio, self._ratio_known = observed, True
        if _encoded_size(encoded) > self.max_message_bytes and len(trades) > 1:
            half = len(trades) // 2
            return self._encode(trades[:half]) + self._encode(trades[half:])
        return [_body(encoded, trades, raw_bytes)]

    def _too_big(self, lines: list[bytes]) -> bool:
        return _encoded_size(encode_body(lines, self.gzip_min_bytes)) > self.max_message_bytes


def _encoded_size(encoded: EncodedBody) -> int:
    return len(encoded.body) if encoded.gzipped else len(encoded.body.encode("utf-8"))


def _body(encoded: EncodedBody, trades: list[TradeFrame], raw_bytes: int) -> Body:
    ranges: dict[str, tuple[int, int]] = {}
    for t in trades:
        lo, hi = ranges.get(t.symbol, (t.trade_id, t.trade_id))
        ranges[t.symbol] = (min(lo, t.trade_id), max(hi, t.trade_id))
    return Body(
        encoded=encoded,
        trades=len(trades),
        raw_bytes=raw_bytes,
        id_ranges=tuple(IdRange(s, lo, hi) for s, (lo, hi) in sorted(ranges.items())),
        last_event_time_ms=max(t.event_time_ms for t in trades),
    )
