"""Prefect tasks of the anomaly flow: read recent candles, evaluate the rules, publish what changed.

The rules and the publish decisions are pure (``tasks.core.anomaly``, ``tasks.core.alert_state``);
here they meet DynamoDB (candles, alert state, the alert log) and SNS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.aws import alert_records, dynamodb, sns
from tasks.context import Store
from tasks.core.alert_message import AlertMessage, alert_message, cleared_message
from tasks.core.alert_state import Action, decide
from tasks.core.anomaly import MINUTE, Assessment, RuleName, RuleSet, assess
from tasks.core.keys import iso_time
from tasks.core.models import Candle, Interval
from tasks.settings import Settings

NEWEST_TRADED_SCAN = 2000  # empty klines read back at most while looking for the last trade


@dataclass(frozen=True)
class AnomalyReport:
    evaluated: dict[str, str] = field(default_factory=dict)  # symbol -> evaluated minute
    findings: tuple[str, ...] = ()
    published: tuple[AlertMessage, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: AnomalyReport) -> AnomalyReport:
        return AnomalyReport(
            {**self.evaluated, **other.evaluated},
            self.findings + other.findings,
            self.published + other.published,
            {**self.skipped, **other.skipped},
        )

    def summary(self) -> str:
        return (
            f"{len(self.evaluated)} symbol(s) evaluated, {len(self.findings)} finding(s), "
            f"{len(self.published)} message(s) published"
        )

    def markdown(self) -> str:
        lines = [f"**detect-anomalies**: {self.summary()}"]
        if self.published:
            lines += ["", "| minute | kind | subject |", "| --- | --- | --- |"]
            lines += [f"| {iso_time(m.minute)} | {m.kind} | {m.subject} |" for m in self.published]
        if self.skipped:
            lines += [
                "",
                "not evaluated:",
                *(f"- {k}: {v}" for k, v in sorted(self.skipped.items())),
            ]
        return "\n".join(lines)


def rule_set(settings: Settings) -> RuleSet:
    """The configured rules: defaults, then CANDLEFLOW_ANOMALY_RULES, then per-symbol overrides."""
    base = RuleSet().with_overrides(settings.anomaly_rules, "CANDLEFLOW_ANOMALY_RULES")
    return RuleSet(
        base.price_move, base.volume_spike, base.sma, base.stale, settings.anomaly_symbol_rules
    )


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def recent_candles(ctx: Store, symbol: str, minute: int, lookback_minutes: int) -> list[Candle]:
    """The symbol's 1m candles of the lookback before ``minute`` and its newest traded candle."""
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    start = minute - lookback_minutes * MINUTE
    candles = list(dynamodb.query_candles(client, table, symbol, Interval.M1, start, minute))
    if not any(not c.is_empty for c in candles):
        older = dynamodb.query_candles(
            client,
            table,
            symbol,
            Interval.M1,
            end_ms=start - 1,
            descending=True,
            limit=NEWEST_TRADED_SCAN,
        )
        for c in older:
            if not c.is_empty:
                candles.append(c)
                break
    return candles


@task(cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 5, 15])
def publish_changes(
    ctx: Store,
    assessment: Assessment,
    symbol: str,
    minute: int,
    flow_run_url: str | None,
    published_ms: int,
) -> tuple[AlertMessage, ...]:
    """Advance each evaluated rule's alert state by one minute and publish what it says to.

    Order per rule: claim the message in the alert log -> publish to SNS -> mark it published ->
    store the new state. A crash anywhere repeats at most the publish of a claimed, unmarked message.
    """
    logger = get_run_logger()
    client, table = ctx.clients.dynamodb, ctx.spec.table.name
    topic = sns.topic_arn(ctx.clients.sns, ctx.spec.alerts.topic)
    found = {f.rule: f for f in assessment.findings}
    published: list[AlertMessage] = []
    for rule in RuleName:
        if rule in assessment.skipped:
            continue
        before = alert_records.state(client, table, symbol, rule)
        after, action = decide(
            before,
            found.get(rule),
            minute,
            ctx.settings.alert_cooldown_minutes,
            announce_clear=not rule.is_event,
        )
        if after == before:
            continue  # this minute was evaluated already
        if action is not Action.NOTHING:
            finding = found.get(rule)
            message = (
                alert_message(finding, flow_run_url)
                if action is Action.ALERT and finding is not None
                else cleared_message(symbol, rule, minute, after.since_minute, flow_run_url)
            )
            if alert_records.claim(client, table, message):
                message_id = sns.publish(
                    ctx.clients.sns, topic, message.subject, message.body, message.attributes
                )
                alert_records.mark_published(client, table, message, published_ms, message_id)
                published.append(message)
                logger.warning("published %s: %s", message.kind, message.subject)
        alert_records.save_state(client, table, symbol, rule, after)
    return tuple(published)


def evaluate_symbol(candles: list[Candle], symbol: str, now: int, rules: RuleSet) -> Assessment:
    return assess(symbol, candles, now, rules.for_symbol(symbol))
