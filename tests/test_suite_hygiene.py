"""The suite cannot die silently: servers take their handler threads with them, SIGPIPE is
ignored around every test, and every test has a time limit."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakehub import FakeHub

ROOT = Path(__file__).resolve().parents[1]


def test_a_stalled_fake_hub_handler_stops_with_its_server() -> None:
    hub = FakeHub().start()
    hub.inject(r"^/api/models", kind="stall", delay=30.0, times=5)
    before = set(threading.enumerate())

    def ask() -> None:
        with contextlib.suppress(urllib.error.URLError, OSError):  # the hub went away
            urllib.request.urlopen(f"{hub.url}/api/models", timeout=60).read()

    client = threading.Thread(target=ask)
    client.start()
    deadline = time.monotonic() + 10
    while not hub.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hub.requests, "the request reached the stalled handler"
    started = time.monotonic()
    hub.stop()
    assert time.monotonic() - started < 5, "stop() does not wait out the stall"
    client.join(timeout=10)
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], f"threads outlived the hub: {left}"


def test_sigpipe_is_ignored_even_after_the_cli_ran() -> None:
    if not hasattr(signal, "SIGPIPE"):
        pytest.skip("no SIGPIPE here")
    from securitynet.cli.app import main

    with contextlib.suppress(SystemExit):
        main(["--version"])
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


def test_every_test_has_a_time_limit() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    match = re.search(r"^timeout\s*=\s*(\d+)", section, re.MULTILINE)
    assert match is not None and 0 < int(match.group(1)) <= 600
