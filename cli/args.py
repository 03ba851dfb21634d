"""Argument types shared by the commands: checked at parse time, passed on as given."""

from __future__ import annotations

import argparse

from tasks.core.keys import parse_iso


def iso_arg(text: str) -> str:
    """Check an ISO-8601 time at parse time; the flow gets the text as given."""
    try:
        parse_iso(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not ISO-8601 (e.g. 2024-08-08T23:00:00Z)"
        ) from None
    return text


def symbols_arg(text: str) -> list[str]:
    return [s.strip().upper() for s in text.split(",") if s.strip()]
