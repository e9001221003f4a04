"""The GitHub REST client against a loopback GitHub replaying ../shared's recorded
responses (and answers built to GitHub's documented shapes where the recording has none):
retries, rate limits, ETags and Link pagination, each shown on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from securitynet.errors import (
    NotFoundError,
    RateLimitedError,
    SourceUnavailableError,
    UpstreamError,
)
from securitynet.scrapers.github_client import GithubClient
from securitynet.settings import Settings, get_settings
from tests.fakegithub import FakeGithub


@pytest.fixture
def fake(shared_dir: Path) -> Iterator[FakeGithub]:
    with FakeGithub() as server:
        server.load_recorded(shared_dir)
        yield server


def _settings(fake: FakeGithub, tmp_path: Path, **kw: object) -> Settings:
    return get_settings(home=tmp_path, github_api_url=f"{fake.url}/api", http_backoff=0.01, **kw)


class Sleeper:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_a_500_is_retried_and_the_recorded_repository_comes_back(fake: FakeGithub, tmp_path: Path) -> None:
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep) as client:
        repo = client.get_json("repos/PyGithub/PyGithub")
    assert repo["full_name"] == "PyGithub/PyGithub"
    assert [h.status for h in fake.hits] == [500, 200]  # the recording: a 500, then the retry
    assert len(sleep.calls) == 1 and client.stats.retries == 1


def test_link_pagination_follows_rel_next_through_the_recorded_search(fake: FakeGithub, tmp_path: Path) -> None:
    with GithubClient(_settings(fake, tmp_path)) as client:
        items = list(client.iter_pages(
            "search/repositories", {"sort": "stars", "q": "github language:Python", "order": "desc"},
            resource="search", key="items", max_pages=2,
        ))
    names = [i["full_name"] for i in items]
    assert names[0] == "kennethreitz/legit" and "logsol/Github-Auto-Deploy" in names
    assert len(items) == len(set(names)) > 30  # two recorded pages of the 34
    assert fake.hits[1].path.endswith("page=2")


def test_an_unchanged_answer_costs_a_304_and_replays_the_stored_body(fake: FakeGithub, tmp_path: Path) -> None:
    settings = _settings(fake, tmp_path)
    with GithubClient(settings) as client:
        first = client.get_json("repos/stellarcarbon/sorocarbon/releases/223668595")
    with GithubClient(settings) as client:  # a later run: the store is on disk
        again = client.get_json("repos/stellarcarbon/sorocarbon/releases/223668595")
        assert client.stats.not_modified == 1 and client.stats.unconditional == 0
    assert again == first and again["assets"][0]["digest"].startswith("sha256:2e4ca075")
    assert [(h.status, h.conditional) for h in fake.hits] == [(200, False), (304, True)]


def test_a_secondary_rate_limit_waits_retry_after(fake: FakeGithub, tmp_path: Path) -> None:
    fake.inject(r"/rate_limit", 403, times=2, headers={"Retry-After": "3"})
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep) as client:
        data = client.get_json("rate_limit")
    assert data["resources"]["search"]["limit"] == 30
    assert sleep.calls == [3.0, 3.0]
    assert [h.status for h in fake.hits] == [403, 403, 200]


def test_a_429_with_retry_after_is_waited_out(fake: FakeGithub, tmp_path: Path) -> None:
    fake.inject(r"/users/yurinnick", 429, headers={"Retry-After": "2"})
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep) as client:
        assert client.get_json("users/yurinnick")["login"] == "yurinnick"
    assert sleep.calls == [2.0]


def test_an_exhausted_primary_limit_waits_for_its_reset(fake: FakeGithub, tmp_path: Path) -> None:
    now = 1_700_000_000.0
    fake.inject(r"/users/", 403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 40)})
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep, clock=lambda: now) as client:
        assert client.get_json("users/yurinnick")["login"] == "yurinnick"
    assert sleep.calls == [41.0]


def test_a_limit_beyond_the_time_budget_is_a_rate_limited_error_at_once(fake: FakeGithub, tmp_path: Path) -> None:
    fake.inject(r"/users/", 429, headers={"Retry-After": "3600"})
    sleep = Sleeper()
    client = GithubClient(_settings(fake, tmp_path, github_max_seconds=60), sleep=sleep)
    with client, pytest.raises(RateLimitedError, match="budget") as info:
        client.get_json("users/yurinnick")
    assert sleep.calls == [] and info.value.retry_after == 3600


def test_a_response_leaving_no_quota_makes_the_next_request_wait(fake: FakeGithub, tmp_path: Path) -> None:
    now = 1_700_000_000.0
    fake.set("/api/users/a", {"login": "a"}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 10)})
    fake.set("/api/users/b", {"login": "b"}, headers={"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": str(int(now) + 10)})
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep, clock=lambda: now) as client:
        client.get_json("users/a")
        assert sleep.calls == []
        client.get_json("users/b")
    assert sleep.calls == [11.0]


def test_5xx_retries_are_bounded(fake: FakeGithub, tmp_path: Path) -> None:
    fake.inject(r"/users/", 502, times=10)
    client = GithubClient(_settings(fake, tmp_path, http_retries=2), sleep=Sleeper())
    with client, pytest.raises(UpstreamError, match="gave up after 3 attempts"):
        client.get_json("users/yurinnick")
    assert fake.count(status=502) == 3


def test_a_plain_403_and_a_404_are_errors_not_waits(fake: FakeGithub, tmp_path: Path) -> None:
    fake.inject(r"/users/", 403)
    sleep = Sleeper()
    with GithubClient(_settings(fake, tmp_path), sleep=sleep) as client:
        with pytest.raises(UpstreamError, match="HTTP 403"):
            client.get_json("users/yurinnick")
        with pytest.raises(NotFoundError):
            client.get_json("repos/nobody/nothing")
        assert client.get_json("repos/nobody/nothing", not_found_ok=True) is None
    assert sleep.calls == []


def test_the_token_goes_to_the_api_only(fake: FakeGithub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    seen: list[dict[str, str]] = []
    import requests

    class Spy(requests.Session):
        def get(self, url, **kw):  # type: ignore[no-untyped-def, override]
            seen.append(dict(kw.get("headers") or {}))
            return super().get(url, **kw)

    fake.set("/raw/o/r/abc/x.pt", b"x")
    with GithubClient(_settings(fake, tmp_path), session=Spy()) as client:
        client.get_json("users/yurinnick")
        client.get(f"{fake.url}/raw/o/r/abc/x.pt", accept="*/*")
    assert seen[0]["Authorization"] == "Bearer ghp_secret"
    assert "Authorization" not in seen[1]


def test_offline_the_client_is_not_made(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError, match="offline"):
        GithubClient(get_settings(home=tmp_path, offline=True))
