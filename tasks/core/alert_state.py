"""When to publish a finding: once when it appears, reminders after a cooldown, one "cleared".

One ``AlertState`` per (symbol, rule), advanced minute by minute by ``decide``:

- a condition that appears (no state, or inactive) publishes an alert;
- while it persists, nothing, until ``cooldown_minutes`` have passed since the last publish: then a
  reminder (another alert);
- when it disappears after being active, one "cleared" (``announce_clear=False`` for event rules
  such as a crossover, which have no lasting condition: the state still goes inactive);
- a minute at or before the last evaluated one changes nothing, so re-runs are idempotent.

Call ``decide`` only for rules that were evaluated that minute (``Assessment.skipped`` lists the
others): a rule without enough data is neither present nor clear. Minutes are open times in ms.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from tasks.core.anomaly import MINUTE, Finding


class Action(enum.Enum):
    ALERT = "alert"  # publish the finding (first time, or a reminder after the cooldown)
    CLEARED = "cleared"  # publish that the condition is gone
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where one (symbol, rule) stands after ``last_evaluated_minute``.

    ``since_minute`` is when the current (or the last) condition appeared; ``last_published_minute``
    when its last alert, reminder or "cleared" went out.
    """

    active: bool
    since_minute: int | None
    last_published_minute: int | None
    last_evaluated_minute: int


def decide(
    state: AlertState | None,
    finding: Finding | None,
    minute: int,
    cooldown_minutes: int,
    *,
    announce_clear: bool = True,
) -> tuple[AlertState, Action]:
    """The next state and what to publish, given whether the rule fired (``finding``) at ``minute``."""
    if isinstance(cooldown_minutes, bool) or cooldown_minutes < 1:
        raise ValueError(f"cooldown_minutes must be at least 1, not {cooldown_minutes!r}")
    if finding is not None and finding.minute != minute:
        raise ValueError(f"the finding is for minute {finding.minute}, not {minute}")
    if state is not None and minute <= state.last_evaluated_minute:
        return state, Action.NOTHING
    if state is None or not state.active:
        if finding is not None:
            return AlertState(True, minute, minute, minute), Action.ALERT
        if state is None:
            return AlertState(False, None, None, minute), Action.NOTHING
        return replace(state, last_evaluated_minute=minute), Action.NOTHING
    if finding is None:
        published = minute if announce_clear else state.last_published_minute
        action = Action.CLEARED if announce_clear else Action.NOTHING
        return AlertState(False, state.since_minute, published, minute), action
    last = state.last_published_minute
    if last is not None and minute - last < cooldown_minutes * MINUTE:
        return replace(state, last_evaluated_minute=minute), Action.NOTHING
    return replace(state, last_published_minute=minute, last_evaluated_minute=minute), Action.ALERT
