"""What an alert says: the SNS subject, the JSON body and the message attributes, built from a finding.

The body is one JSON object a program can act on::

    {"kind": "alert", "symbol": "BTCUSDT", "rule": "price_move", "severity": "critical",
     "minute": "2024-08-09T00:01:00Z", "value": "4.77...", "threshold": "2",
     "details": {...the closes and the window...},
     "subject": "BTCUSDT up 4.77% in 5 min (critical)", "flow_run": "http://127.0.0.1:4200/runs/..."}

A "cleared" message names the rule and when its condition appeared and went away. The attributes
(``symbol``, ``rule``, ``severity``, ``kind``) let SNS subscriptions filter, e.g. only critical
alerts of BTCUSDT by SMS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tasks.core.anomaly import Finding, RuleName
from tasks.core.keys import iso_time


@dataclass(frozen=True, slots=True)
class AlertMessage:
    symbol: str
    rule: RuleName
    kind: str  # "alert" or "cleared"
    minute: int
    severity: str
    subject: str
    body: str

    @property
    def attributes(self) -> dict[str, str]:
        return {
            "symbol": self.symbol,
            "rule": self.rule.value,
            "severity": self.severity,
            "kind": self.kind,
        }


def alert_message(finding: Finding, flow_run_url: str | None) -> AlertMessage:
    subject = finding.subject()
    body = {
        "kind": "alert",
        "symbol": finding.symbol,
        "rule": finding.rule.value,
        "severity": finding.severity.value,
        "minute": iso_time(finding.minute),
        "value": format(finding.value, "f"),
        "threshold": format(finding.threshold, "f"),
        "details": finding.details,
        "subject": subject,
        "flow_run": flow_run_url,
    }
    return AlertMessage(
        finding.symbol,
        finding.rule,
        "alert",
        finding.minute,
        finding.severity.value,
        subject,
        json.dumps(body, sort_keys=False),
    )


def cleared_message(
    symbol: str, rule: RuleName, minute: int, since: int | None, flow_run_url: str | None
) -> AlertMessage:
    since_text = f" (since {iso_time(since)})" if since is not None else ""
    subject = f"{symbol} {rule.value.replace('_', ' ')} cleared{since_text}"[:100]
    body = {
        "kind": "cleared",
        "symbol": symbol,
        "rule": rule.value,
        "severity": "info",
        "minute": iso_time(minute),
        "since": iso_time(since) if since is not None else None,
        "subject": subject,
        "flow_run": flow_run_url,
    }
    return AlertMessage(symbol, rule, "cleared", minute, "info", subject, json.dumps(body))
