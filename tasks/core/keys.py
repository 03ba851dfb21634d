"""Storage addresses as pure functions of the data: S3 keys and DynamoDB keys.

A redelivered message produces the same keys (and so rewrites the same objects): nothing here reads
the clock or anything but its arguments.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.core.models import Interval


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso_time(ms: int) -> str:
    """The DynamoDB sort key of an interval start: ISO-8601 UTC to the second, ``Z`` suffix."""
    return utc(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as Binance's kline close times: ``...T23:55:59.999Z``."""
    return utc(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time; naive times are taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def market_id(symbol: str, interval: Interval) -> str:
    """The DynamoDB partition key, as the seed's: ``BTCUSDT_1m``."""
    return f"{symbol}_{interval.value}"


def dirty_market_id(interval: Interval) -> str:
    """Partition of the markers of ``interval`` candles awaiting a re-roll: ``_dirty_1h``.

    The leading underscore keeps it apart from every market (symbols are alphanumeric).
    """
    return f"_dirty_{interval.value}"


def dirty_sort_key(symbol: str, open_time: int) -> str:
    """Sort key of a dirty marker, parent start then symbol: ``2024-08-08T23:00:00Z#BTCUSDT``."""
    return f"{iso_time(open_time)}#{symbol}"


def partition_path(symbol: str, time_ms: int) -> str:
    """Hive partition of a trade time: ``symbol=BTCUSDT/date=2024-08-08/hour=23``."""
    moment = utc(time_ms)
    return f"symbol={symbol}/date={moment:%Y-%m-%d}/hour={moment:%H}"


# Lake object names start with the last trade id, zero-padded to this width, then the first: sorted
# by name they are sorted by last id, so one listing that starts after a batch's first id finds
# every object that may hold one of its trades (``lake_scan``). int64 ids have at most 19 digits.
ID_WIDTH = 20


def lake_key(
    prefix: str,
    symbol: str,
    time_ms: int,
    first_id: int,
    last_id: int,
    digest: str,
    ext: str,
) -> str:
    """Key of one lake object: partition, the trade-id span it holds and a digest of its content.

    ``raw/trades/symbol=BTCUSDT/date=2024-08-08/hour=23/<last>-<first>-<digest>.ndjson.gz``
    """
    name = f"{last_id:0{ID_WIDTH}d}-{first_id:0{ID_WIDTH}d}-{digest}.{ext}"
    return f"{prefix}/{partition_path(symbol, time_ms)}/{name}"


def lake_span(key: str) -> tuple[int, int] | None:
    """The ``(first_id, last_id)`` a lake key names, or None for a key not named by ``lake_key``."""
    last, _, rest = key.rpartition("/")[2].partition("-")
    first = rest.partition("-")[0]
    if len(last) != ID_WIDTH or len(first) != ID_WIDTH or not (last + first).isdigit():
        return None
    return int(first), int(last)


def lake_scan(prefix: str, symbol: str, time_ms: int, first_id: int) -> tuple[str, str]:
    """``(Prefix, StartAfter)`` of the listing that finds the partition's objects whose last
    trade id is ``first_id`` or more: the only ones that can hold a trade from ``first_id`` on."""
    folder = f"{prefix}/{partition_path(symbol, time_ms)}/"
    if first_id <= 0:
        return folder, folder
    return folder, f"{folder}{first_id - 1:0{ID_WIDTH}d}-{'9' * ID_WIDTH}"


def quarantine_key(prefix: str, received_ms: int, digest: str) -> str:
    """Key of a quarantine object, partitioned by when the bad lines reached SQS."""
    moment = utc(received_ms)
    return f"{prefix}/date={moment:%Y-%m-%d}/hour={moment:%H}/{digest}.ndjson"


# Partitions of the candles table that hold pipeline state rather than a market (the leading
# underscore keeps them apart from every symbol): gap records and the gap scan's watermarks.
GAPS_MARKET = "_gaps"
WATERMARK_MARKET = "_gap_watermark"


def gap_sort_key(symbol: str, first_id: int) -> str:
    """Sort key of a gap record, zero-padded so records sort by id: ``BTCUSDT#00000000003735683260``."""
    return f"{symbol}#{first_id:020d}"
