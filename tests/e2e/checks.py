"""Checks the end-to-end tests share."""

from __future__ import annotations

from collections.abc import Iterable

from tasks.aws import dynamodb
from tasks.core.keys import iso_millis
from tasks.core.models import Interval
from tests.builders import Trade, kline, reference_candles
from tests.conftest import AwsEnv


def assert_candles_equal_the_trades(
    aws: AwsEnv, trades: list[Trade], symbols: Iterable[str]
) -> None:
    """Every stored 1m, 1h and 1d candle of ``symbols`` is the reference kline of ``trades``, and
    nothing else is stored."""
    for interval in Interval:
        expected = reference_candles(trades, interval.ms)
        for symbol in symbols:
            got = {
                c.open_time: c
                for c in dynamodb.query_candles(
                    aws.clients.dynamodb, aws.spec.table.name, symbol, interval
                )
            }
            mine = {t: r for (s, t), r in expected.items() if s == symbol}
            assert sorted(got) == sorted(mine), (symbol, interval)
            for t, ref in mine.items():
                assert kline(got[t]) == kline(ref), (symbol, interval, iso_millis(t))
