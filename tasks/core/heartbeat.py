"""What the pipeline reports about itself as it works: pure, from one ingest batch.

The producer may only send to the queue, so what it says about itself travels in message attributes
(``PRODUCER_ATTRIBUTES``): its id, a running count of the trades it has sent and the newest event
time in the message. The ingest turns a batch's messages into one beat per producer (rate over the
batch, send lag) and one per symbol (the newest trade time it has stored), which operators read in
``GET /health`` and ``candleflow monitor``.
"""

from __future__ import annotations

from dataclasses import dataclass

PRODUCER_ID = "producer"
PRODUCER_SEQ = "producer-seq"  # trades this producer has sent, this message's included
PRODUCER_EVENT_MS = "producer-event-ms"  # newest event time in this message, ms
PRODUCER_ATTRIBUTES = (PRODUCER_ID, PRODUCER_SEQ, PRODUCER_EVENT_MS)


def producer_attributes(producer: str, seq: int, event_ms: int) -> dict[str, str]:
    return {PRODUCER_ID: producer, PRODUCER_SEQ: str(seq), PRODUCER_EVENT_MS: str(event_ms)}


@dataclass(frozen=True, slots=True)
class Sent:
    """One received message as its producer described it."""

    producer: str
    seq: int
    event_ms: int
    sent_ms: int  # SQS SentTimestamp


@dataclass(frozen=True, slots=True)
class ProducerBeat:
    producer: str
    sent_ms: int  # the newest message's SentTimestamp
    seq: int  # trades sent up to it
    lag_ms: int  # its SentTimestamp minus the newest event time in it
    rate: float | None  # trades/s over the batch's messages; None if they span under a second


@dataclass(frozen=True, slots=True)
class IngestBeat:
    updated_ms: int  # when the batch was done (worker clock)
    messages: int
    trades: int
    seconds: float
    wait_ms: int  # how long the batch's oldest message had waited in SQS when received


def sent_of(attributes: dict[str, str], sent_ms: int) -> Sent | None:
    """The producer's description of a message; None for messages from elsewhere or malformed."""
    try:
        return Sent(
            attributes[PRODUCER_ID],
            int(attributes[PRODUCER_SEQ]),
            int(attributes[PRODUCER_EVENT_MS]),
            sent_ms,
        )
    except (KeyError, ValueError):
        return None


def producer_beats(sent: list[Sent]) -> list[ProducerBeat]:
    """One beat per producer seen in a batch, from its newest message."""
    by_producer: dict[str, list[Sent]] = {}
    for s in sent:
        by_producer.setdefault(s.producer, []).append(s)
    beats = []
    for producer, mine in sorted(by_producer.items()):
        mine.sort(key=lambda s: (s.seq, s.sent_ms))
        first, last = mine[0], mine[-1]
        span_ms = last.sent_ms - first.sent_ms
        rate = (last.seq - first.seq) * 1000 / span_ms if span_ms >= 1000 else None
        beats.append(
            ProducerBeat(producer, last.sent_ms, last.seq, last.sent_ms - last.event_ms, rate)
        )
    return beats
