"""``candleflow alerts``: read the alerts inbox (the SQS queue subscribed to the alerts topic)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from infra.spec import resource_spec
from tasks.aws import sqs
from tasks.aws.clients import AwsClients
from tasks.settings import Settings

INVISIBLE_S = 30  # how long messages being listed stay hidden from other readers


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "alerts",
        help="show the anomaly alerts in the alerts inbox (SNS -> SQS)",
        description=(
            "Prints each alert the detect-anomalies flow published, oldest first, and removes it "
            "from the inbox (--keep leaves it). --follow keeps waiting for new ones (Ctrl-C stops)."
        ),
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep waiting for new alerts")
    p.add_argument("--keep", action="store_true", help="leave the alerts in the inbox")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run_cli)


def parse(body: str) -> dict[str, object]:
    """An inbox message: SNS's envelope around our JSON body."""
    envelope = json.loads(body)
    alert = json.loads(envelope["Message"])
    if not isinstance(alert, dict):
        raise ValueError("the alert body is not a JSON object")
    alert.setdefault("subject", envelope.get("Subject", ""))
    return alert


def line(alert: dict[str, object]) -> str:
    kind = str(alert.get("kind", "alert"))
    label = "cleared" if kind == "cleared" else str(alert.get("severity", "")).upper()
    return f"{alert.get('minute', '')}  {label:<8}  {alert.get('subject', '')}"


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    client = AwsClients().sqs
    url = sqs.queue_url(client, resource_spec(settings).alerts.inbox_queue)
    shown = 0
    seen: set[str] = set()  # with --keep --follow, kept messages come back: show each once
    while True:
        batch: list[sqs.ReceivedMessage] = []
        while got := sqs.receive(client, url, 10, 0 if batch else (20 if args.follow else 1)):
            batch += got
        alerts = []
        for m in batch:
            if m.message_id in seen:
                continue
            seen.add(m.message_id)
            try:
                alerts.append(parse(m.body))
            except (ValueError, KeyError, TypeError) as exc:
                print(f"inbox message {m.message_id} is not an alert ({exc})", file=sys.stderr)
        for alert in sorted(alerts, key=lambda a: (str(a.get("minute")), str(a.get("symbol")))):
            print(json.dumps(alert) if args.format == "json" else line(alert), flush=True)
        shown += len(alerts)
        handles = [m.receipt_handle for m in batch]
        if args.keep:
            # Visible again once we are done, for the next reader (follow: after a while).
            sqs.extend_visibility(client, url, handles, INVISIBLE_S if args.follow else 0)
        else:
            sqs.delete(client, url, handles)
        if not args.follow:
            break
        if not batch:
            time.sleep(0.5)
    if shown == 0 and not args.follow and args.format == "text":
        print("no alerts in the inbox", file=sys.stderr)
    return 0
