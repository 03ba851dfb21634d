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


def speed_arg(text: str) -> float | None:
    """A replay pace: a positive multiple of real time, or ``max`` (None: no pauses)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {text!r}") from None
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"speed must be positive, got {text!r}")
    return speed
