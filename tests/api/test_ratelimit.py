"""The per-client sliding window, checked against a direct count over any request times."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from api.ratelimit import RateLimiter
from api.views import exact_json

requests = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 2_000)), min_size=1, max_size=200
).map(lambda r: sorted(r, key=lambda x: x[1]))


@given(requests, st.integers(1, 8), st.integers(1, 300))
def test_a_request_is_refused_exactly_when_its_window_already_holds_the_limit(
    reqs: list[tuple[str, int]], limit: int, window: int
) -> None:
    limiter = RateLimiter(limit, window)
    allowed: dict[str, list[int]] = {}
    for client, now in reqs:
        mine = allowed.setdefault(client, [])
        in_window = [t for t in mine if t > now - window]
        wait = limiter.check(client, now)
        if len(in_window) < limit:
            assert wait is None
            mine.append(now)
        else:
            assert wait is not None and 0 < wait <= window
            assert wait == max(in_window[0] + window - now, 0.001)


def test_idle_clients_are_forgotten() -> None:
    limiter = RateLimiter(2, 10)
    for i in range(1000):
        limiter.check(f"10.0.{i // 256}.{i % 256}", i / 100)
    assert limiter.clients == 1000
    limiter.check("late", 1000)
    assert limiter.clients == 1


def test_exact_json_writes_decimals_with_their_own_digits() -> None:
    value = {"data": [Decimal("61602.01000000"), Decimal("0.1"), Decimal("-3E-8")], "s": "#0#1"}
    assert exact_json(value) == b'{"data":[61602.01000000,0.1,-0.00000003],"s":"#0#1"}'
