"""detect-anomalies: evaluate the anomaly rules on each symbol's last complete minute and alert via SNS.

Per symbol: read the recent 1m candles (and the newest traded one) -> price move, volume spike, SMA
divergence/crossover, stale data (``tasks.core.anomaly``) -> advance each rule's alert state and
publish alerts, reminders after the cooldown, and "cleared" messages (``tasks.core.alert_state``).
State is stored, so restarts change nothing, and re-running a minute publishes nothing twice.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact

from tasks.anomaly import (
    AnomalyReport,
    evaluate_symbol,
    now_ms,
    publish_changes,
    recent_candles,
    rule_set,
)
from tasks.context import store_context
from tasks.core.anomaly import MINUTE
from tasks.core.keys import iso_time, parse_iso
from tasks.core.models import Interval
from tasks.settings import Settings


@flow(name="detect-anomalies")
def detect_anomalies(at: str | None = None, symbols: list[str] | None = None) -> AnomalyReport:
    """Evaluate the minute before ``at`` (ISO-8601; default now), e.g. to re-check a past minute."""
    logger = get_run_logger()
    settings = Settings()
    rules = rule_set(settings)
    now = parse_iso(at) if at is not None else now_ms()
    minute = Interval.M1.floor(now) - MINUTE
    ctx = store_context(settings)
    run_url = runtime.flow_run.ui_url
    report = AnomalyReport()
    for symbol in symbols or settings.symbols:
        lookback = rules.for_symbol(symbol).lookback_minutes
        candles = recent_candles(ctx, symbol, minute, lookback)
        assessment = evaluate_symbol(candles, symbol, now, rules)
        published = publish_changes(ctx, assessment, symbol, minute, run_url, now_ms())
        report += AnomalyReport(
            {symbol: iso_time(minute)},
            tuple(f.subject() for f in assessment.findings),
            published,
            {f"{symbol} {r.value}": why for r, why in assessment.skipped.items()},
        )
    logger.info("anomalies at %s: %s", iso_time(minute), report.summary())
    create_markdown_artifact(
        key="anomalies", markdown=report.markdown(), description="anomaly alerts"
    )
    return report
