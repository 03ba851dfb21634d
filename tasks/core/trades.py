"""Decoding trade lines into frames, and the typed trade schema the lake stores.

Stage 1, ``decode_lines``: one row per NDJSON line with every contract field as the exact text it had
(``{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
"q":"0.02000000","T":1723161255342,"m":true,"M":true}``), plus the raw line. Lines that are not JSON
objects become rejects with a reason. Types are checked afterwards, by the expectation suite.

Stage 2, ``typed_trades``: validated rows cast to exact types (Decimal prices, integer ids and times).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from tasks.core.models import MICROS_THRESHOLD

FIELDS = ("e", "E", "s", "t", "p", "q", "T", "m")
_STRUCT = pl.Struct({k: pl.String for k in FIELDS})
# str.json_decode needs ~2 KB per row while it runs; decoding in slices bounds that, and is faster.
_DECODE_ROWS = 10_000
# Binance's own serialisation of a trade event, key by key. A line matching it is a JSON object
# whose values are exactly the captured texts (no escapes, no leading zeros, integers of at most 18
# digits), so it needs no JSON parser: the regex is ~3.5x faster than str.json_decode and needs far
# less memory. Any other line (other key order, spaces, extra keys, poison) takes the JSON parser.
_INT = r"(?:0|[1-9][0-9]{0,17})"
_CANONICAL = (
    rf'^\{{"e":"(?<e>[a-z]+)","E":(?<E>{_INT}),"s":"(?<s>[A-Z0-9]+)","t":(?<t>{_INT}),'
    rf'"p":"(?<p>[0-9.]+)","q":"(?<q>[0-9.]+)","T":(?<T>{_INT}),"m":(?<m>true|false),'
    r'"M":(?:true|false)\}$'
)

PRICE = pl.Decimal(38, 8)
QUOTE = pl.Decimal(38, 16)

LINES_SCHEMA = {"message_id": pl.String, "sent_ms": pl.Int64, "raw": pl.String}
_HEAD_SCHEMA = {"message_id": pl.String, "sent_ms": pl.Int64}

TRADES_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "trade_id": pl.Int64(),
    "price": PRICE,
    "quantity": PRICE,
    "is_buyer_maker": pl.Boolean(),
    "trade_time": pl.Int64(),  # ms since epoch, UTC (the candle bucket key)
    "ts_event": pl.Int64(),  # ns since epoch: when the trade happened (T, full precision)
    "ts_init": pl.Int64(),  # ns since epoch: when candleflow first saw it (SQS SentTimestamp)
    "event_time": pl.Int64(),  # ms since epoch: Binance's event time E
    "raw": pl.String(),
    "message_id": pl.String(),
}


@dataclass(frozen=True, slots=True)
class Reject:
    """A line kept aside with the reason it was not accepted."""

    message_id: str
    raw: str
    reason: str


def lines_frame(messages: Iterable[tuple[str, int, bytes]]) -> pl.DataFrame:
    """One row per non-blank line of each decoded body: (message id, SQS sent ms, body).

    Split message by message: splitting a whole batch at once held several copies of it at once.
    Python's own split and strip over one body, then one polars string column per body, took a
    third of the time of splitting and exploding in polars.
    """
    raws: list[pl.Series] = []
    heads: list[tuple[str, int, int]] = []
    for message_id, sent_ms, body in messages:
        lines = [
            line for line in body.decode("utf-8", errors="replace").split("\n") if line.strip()
        ]
        if lines:
            raws.append(pl.Series("raw", lines, dtype=pl.String))
            heads.append((message_id, sent_ms, len(lines)))
    if not raws:
        return pl.DataFrame(schema=LINES_SCHEMA)
    ids, sent, counts = zip(*heads, strict=True)
    return (
        pl.DataFrame({"message_id": ids, "sent_ms": sent}, schema=_HEAD_SCHEMA)
        .select(pl.all().repeat_by(pl.Series(counts, dtype=pl.UInt32)).explode())
        .with_columns(pl.concat(raws, rechunk=True))
    )


def decode_lines(lines: pl.DataFrame) -> tuple[pl.DataFrame, list[Reject]]:
    """Parse every line's JSON; returns (rows with the contract fields as text, rejected lines)."""
    raw = lines.get_column("raw")
    fields = raw.str.extract_groups(_CANONICAL).struct.unnest().select(FIELDS)
    others = fields.get_column("e").is_null().arg_true()  # lines the regex did not take
    if others.len():
        try:
            parsed = _json_decode(raw.gather(others))
        except pl.exceptions.PolarsError:
            return _without_poison(lines, others)
        fields = fields.with_columns(
            fields.get_column(k).scatter(others, parsed.get_column(k)) for k in FIELDS
        )
    return pl.concat([lines, fields], how="horizontal"), []


def _without_poison(lines: pl.DataFrame, others: pl.Series) -> tuple[pl.DataFrame, list[Reject]]:
    """Slow path, only for batches holding poison: look at the lines the regex did not take one by
    one, reject the bad ones with their reason and decode the rest."""
    bad: list[int] = []
    rejects: list[Reject] = []
    suspects = lines.select("message_id", "raw")[others]
    for i, (message_id, raw) in zip(others.to_list(), suspects.iter_rows(), strict=True):
        reason = _line_problem(raw)
        if reason is not None:
            bad.append(i)
            rejects.append(Reject(message_id, raw, reason))
    if not bad:
        raise ValueError("polars rejected a line that Python's json module accepts")
    keep = ~pl.int_range(lines.height, eager=True).is_in(pl.Series(bad, dtype=pl.Int64))
    rows, more = decode_lines(lines.filter(keep))
    return rows, rejects + more


def _json_decode(raw: pl.Series) -> pl.DataFrame:
    slices = [raw.slice(i, _DECODE_ROWS) for i in range(0, raw.len(), _DECODE_ROWS)] or [raw]
    return pl.concat([part.str.json_decode(_STRUCT) for part in slices]).struct.unnest()


def _line_problem(raw: str) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(value, dict):
        return f"not a JSON object but {type(value).__name__}"
    nested = [k for k in FIELDS if isinstance(value.get(k), (dict, list))]
    if nested:
        return f"field(s) {', '.join(nested)} hold a JSON object or array, not a value"
    return None


def trade_time_ms(column: str = "T") -> pl.Expr:
    """Trade time in ms from the text field, accepting microseconds; null when not an integer."""
    t = pl.col(column).cast(pl.Int64, strict=False)
    return pl.when(t >= MICROS_THRESHOLD).then(t // 1000).otherwise(t)


def typed_trades(valid: pl.DataFrame) -> pl.DataFrame:
    """Cast validated text rows to the lake's trade schema (exact decimals, integer times)."""
    t = pl.col("T").cast(pl.Int64)
    return valid.select(
        pl.col("s").alias("symbol"),
        pl.col("t").cast(pl.Int64).alias("trade_id"),
        pl.col("p").cast(PRICE).alias("price"),
        pl.col("q").cast(PRICE).alias("quantity"),
        (pl.col("m") == "true").alias("is_buyer_maker"),
        trade_time_ms().alias("trade_time"),
        pl.when(t >= MICROS_THRESHOLD).then(t * 1000).otherwise(t * 1_000_000).alias("ts_event"),
        (pl.col("sent_ms") * 1_000_000).alias("ts_init"),
        trade_time_ms("E").alias("event_time"),
        pl.col("raw"),
        pl.col("message_id"),
    )


def distinct_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """One row per (symbol, trade id): duplicates from redelivery or reconnect overlap collapse."""
    first = trades.select(pl.col("trade_id").is_first_distinct().over("symbol")).to_series()
    return trades if first.all() else trades.filter(first)
