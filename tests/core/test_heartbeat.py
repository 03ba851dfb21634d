"""Producer beats from a batch's message attributes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tasks.core.heartbeat import Sent, producer_attributes, producer_beats, sent_of


def test_attributes_round_trip_and_foreign_messages_are_ignored() -> None:
    attrs = {"content-encoding": "gzip", **producer_attributes("host-7", 1200, 1723161255342)}
    assert sent_of(attrs, 1723161256000) == Sent("host-7", 1200, 1723161255342, 1723161256000)
    assert sent_of({"content-encoding": "gzip"}, 1) is None
    assert sent_of({**attrs, "producer-seq": "lots"}, 1) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 500), st.integers(0, 5000)),
        min_size=1,
    ),
    st.randoms(),
)
def test_one_beat_per_producer_from_its_newest_message_whatever_the_order(
    sends: list[tuple[str, int, int]], rnd: object
) -> None:
    # Each producer's messages: counts and send times both grow.
    sent, totals, clocks = [], {"a": 0, "b": 0}, {"a": 10_000, "b": 10_000}
    for producer, trades, gap_ms in sends:
        totals[producer] += trades
        clocks[producer] += gap_ms
        sent.append(Sent(producer, totals[producer], clocks[producer] - 40, clocks[producer]))
    shuffled = list(sent)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    beats = producer_beats(shuffled)
    assert [b.producer for b in beats] == sorted({s.producer for s in sent})
    for b in beats:
        mine = [s for s in sent if s.producer == b.producer]
        assert (b.seq, b.sent_ms, b.lag_ms) == (mine[-1].seq, mine[-1].sent_ms, 40)
        span = mine[-1].sent_ms - mine[0].sent_ms
        if span < 1000:
            assert b.rate is None
        else:
            assert b.rate == (mine[-1].seq - mine[0].seq) * 1000 / span
