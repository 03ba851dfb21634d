"""Raw spread samples as lake objects: Parquet per market and UTC hour, keyed by their content.

``spreads/market=BTC-AUD/date=2024-08-09/hour=00/<first ts>-<last ts>-<digest>.parquet``; writing the
same samples again rewrites the same object. Every field of the sample is kept, so any statistic can
be recomputed from the lake.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from tasks.core.keys import utc
from tasks.core.lake import LakeObject
from tasks.core.spreads import SpreadSample

_DECIMAL = pl.Decimal(38, 18)
_FIELDS = ("mid", "best_bid", "best_ask", "notional", "buy_avg_price", "sell_avg_price")
SPREAD_PARTITION_KEYS = ("market", "date", "hour")
SPREADS_COLUMNS: dict[str, pl.DataType] = {
    "ts": pl.Datetime("ms", "UTC"),
    "venue": pl.String(),
    "source_id": pl.Int64(),
    **{name: _DECIMAL for name in _FIELDS},
    "spread": _DECIMAL,
    "spread_bps": _DECIMAL,
    "filled_fraction": _DECIMAL,
    "thin": pl.Boolean(),
}


_PLACES = Decimal("1E-18")


def _column(samples: list[SpreadSample], name: str) -> pl.Series:
    """A decimal field as text at 18 places: book prices are exact there; the few quotients
    (averages, spreads in bps), exact to 38 digits, are rounded half-even to 18 places."""
    values = []
    for s in samples:
        value: Decimal | None = getattr(s, name)
        values.append(
            None if value is None else format(value.quantize(_PLACES, ROUND_HALF_EVEN), "f")
        )
    return pl.Series(name, values, dtype=pl.String)


def sample_objects(
    samples: Iterable[tuple[SpreadSample, str, int]], prefix: str
) -> list[LakeObject]:
    """One Parquet object per (market, hour) of ``(sample, venue, source id)`` triples."""
    groups: dict[tuple[str, int], list[tuple[SpreadSample, str, int]]] = {}
    for triple in samples:
        s = triple[0]
        groups.setdefault((s.market, s.ts_ms - s.ts_ms % 3_600_000), []).append(triple)
    objects = []
    for (market, hour), rows in sorted(groups.items()):
        rows.sort(key=lambda r: (r[0].ts_ms, r[2]))
        plain = [r[0] for r in rows]
        frame = pl.DataFrame(
            {
                "ts": pl.Series([s.ts_ms for s in plain], dtype=pl.Int64).cast(
                    pl.Datetime("ms", "UTC")
                ),
                "venue": [r[1] for r in rows],
                "source_id": pl.Series([r[2] for r in rows], dtype=pl.Int64),
                # Exact decimals travel as text, then are cast (no float on the way).
                **{n: _column(plain, n).cast(_DECIMAL) for n in _FIELDS},
                "spread": _column(plain, "spread").cast(_DECIMAL),
                "spread_bps": _column(plain, "spread_bps").cast(_DECIMAL),
                "filled_fraction": _column(plain, "filled_fraction").cast(_DECIMAL),
                "thin": [s.thin for s in plain],
            }
        ).select(list(SPREADS_COLUMNS))
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        body = buffer.getvalue()
        digest = hashlib.sha256(frame.write_csv().encode()).hexdigest()[:16]
        moment = utc(hour)
        key = (
            f"{prefix}/market={market}/date={moment:%Y-%m-%d}/hour={moment:%H}/"
            f"{plain[0].ts_ms}-{plain[-1].ts_ms}-{digest}.parquet"
        )
        objects.append(LakeObject(key, body, "application/vnd.apache.parquet"))
    return objects
