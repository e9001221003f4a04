"""Pacing by the Hub's rate-limit headers, on a fake clock (no sleeping, no network)."""

from __future__ import annotations

import pytest

from securitynet.scrapers.hubpace import HubPacer, bucket_of, parse_rate_limit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacer(clock: Clock) -> HubPacer:
    return HubPacer(clock=clock, sleep=clock.sleep)


def headers(
    bucket: str, remaining: int, reset: int, quota: int = 500, window: int = 300
) -> dict[str, str]:
    return {
        "RateLimit": f'"{bucket}";r={remaining};t={reset}',
        "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={window}',
    }


def test_the_hub_headers_parse() -> None:
    info = parse_rate_limit(headers("api", 488, 212))
    assert info is not None and (info.bucket, info.remaining, info.reset, info.quota, info.window) == (
        "api", 488, 212.0, 500, 300.0,
    )  # fmt: skip
    assert parse_rate_limit({"Content-Type": "application/json"}) is None
    assert [bucket_of(u) for u in ("https://h/api/models?x", "https://h/o/m/resolve/main/README.md")] == [
        "api", "resolvers",
    ]  # fmt: skip


def test_no_header_no_pacing(pacer: HubPacer, clock: Clock) -> None:
    for _ in range(1000):
        pacer.acquire("resolvers")
    assert clock.slept == []


def test_what_remains_of_the_window_is_spread_over_the_time_left(
    pacer: HubPacer, clock: Clock
) -> None:
    pacer.observe("resolvers", headers("resolvers", remaining=102, reset=10))  # 100 usable in 10 s
    start = clock.now
    for _ in range(300):
        pacer.acquire("resolvers")
    # a burst of 8, then 10 a second: never faster than the window allows
    assert clock.now - start == pytest.approx((300 - 8) / 10, rel=0.01)


def test_a_spent_window_pauses_until_its_reset_then_goes_at_the_window_pace(
    pacer: HubPacer, clock: Clock
) -> None:
    pacer.observe("resolvers", headers("resolvers", remaining=1, reset=42, quota=302, window=300))
    start = clock.now
    pacer.acquire("resolvers")
    assert clock.now - start == pytest.approx(
        42.0
    )  # the reserve is kept; nothing sent until the reset
    for _ in range(20):
        pacer.acquire("resolvers")
    assert clock.now - start == pytest.approx(42.0 + 21 - 8, abs=0.01)  # then a burst, 1 a second


def test_a_429_pauses_its_bucket_only(pacer: HubPacer, clock: Clock) -> None:
    pause = pacer.throttled("resolvers", headers("resolvers", remaining=0, reset=55))
    assert pause == 55.0 and pacer.pauses == 1
    pacer.acquire("api")  # listing pages are not held up by spent file downloads
    assert clock.slept == []
    pacer.acquire("resolvers")
    assert sum(clock.slept) == pytest.approx(55.0)


def test_a_429_without_rate_limit_headers_waits_retry_after(pacer: HubPacer, clock: Clock) -> None:
    assert pacer.throttled("api", {"Retry-After": "7"}) == 7.0
    pacer.acquire("api")
    assert sum(clock.slept) == pytest.approx(7.0)
    assert pacer.throttled("api", {}) == 5.0  # no word from the Hub: a short default pause


def test_requests_on_their_way_count_against_what_remains(pacer: HubPacer, clock: Clock) -> None:
    for _ in range(5):  # sent before any answer said how much is left
        pacer.acquire("resolvers")
    pacer.release("resolvers")  # the first answer: 10 left, 4 others still on their way
    pacer.observe("resolvers", headers("resolvers", remaining=10, reset=10))
    for _ in range(4):  # 10 - the reserve of 2 - the 4 on their way
        pacer.acquire("resolvers")
    assert clock.slept == []
    pacer.acquire("resolvers")
    assert sum(clock.slept) == pytest.approx(10 / 4)
