"""Binance books from capture files: the offline stand-in for the depth stream and its REST snapshot.

``candleflow up`` without Binance replays the shipped captures (``data/binance-ws``): their
``@depth@100ms`` frames, paced like the recording, feed ``BinanceBooks`` exactly as the live stream
would, and the one REST ``/api/v3/depth`` answer recorded in each symbol's capture serves as its
snapshot. The books then go through Binance's own sync procedure, so the samples are those a live
sampler would have taken then (timed by the captured event times, August 2024).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from producer.sources import ReplaySource
from tasks.errors import ConfigError

DEPTH_SUFFIX = "@depth@100ms"
_SYMBOL_IN_NAME = re.compile(r"spot_([a-z0-9]+)_\d{8}")


class DepthReplay:
    """The depth frames of capture files, merged and paced (``speed``; None: as fast as read)."""

    def __init__(self, files: Sequence[Path], speed: float | None, symbols: Sequence[str]) -> None:
        self._replay = ReplaySource(files, speed, symbols=symbols)

    async def frames(self) -> AsyncGenerator[str, None]:
        async for text in self._replay.frames():
            head = text[:60]
            if DEPTH_SUFFIX + '"' in head:
                yield text

    def stop(self) -> None:
        self._replay.stop()


class CaptureSnapshots:
    """``depth_snapshot(symbol, limit)`` answered with the REST snapshot recorded in the captures."""

    def __init__(self, files: Sequence[Path]) -> None:
        self._answers: dict[str, dict[str, Any]] = {}
        for path in files:
            match = _SYMBOL_IN_NAME.search(path.name)
            if match is None:
                continue
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                for line in lines:
                    text = line.rstrip("\n").partition(" ")[2]
                    if text.startswith("{") and '"lastUpdateId"' in text[:40]:
                        self._answers.setdefault(match.group(1).upper(), json.loads(text))

    @property
    def symbols(self) -> list[str]:
        return sorted(self._answers)

    def depth_snapshot(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        try:
            answer = self._answers[symbol]
        except KeyError:
            raise ConfigError(
                f"no recorded depth snapshot for {symbol} in the replayed captures; "
                f"they hold {', '.join(self.symbols) or 'none'}"
            ) from None
        return {
            "lastUpdateId": answer["lastUpdateId"],
            "bids": answer["bids"][:limit],
            "asks": answer["asks"][:limit],
        }
