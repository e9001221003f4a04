"""'No network' is told apart from 'the server had a bad moment', and answered at once."""

from __future__ import annotations

import errno
import socket
import time

import pytest
import requests

from securitynet.errors import NoNetworkError
from securitynet.network import check_reachable, is_loopback, is_offline_error

UNRESOLVABLE = "https://weights.unresolvable.invalid/resnet50-11ad3fa6.pth"  # .invalid never resolves


def test_dns_failure_wrapped_by_requests_is_offline() -> None:
    try:
        requests.get(UNRESOLVABLE, timeout=5)
    except requests.ConnectionError as exc:
        assert is_offline_error(exc, UNRESOLVABLE)
    else:  # pragma: no cover - a resolver that answers for .invalid
        pytest.skip("this resolver answers for .invalid")


def test_refused_connection_is_offline_only_for_a_remote_host() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert is_offline_error(refused, "https://download.pytorch.org/x.pth")
    assert not is_offline_error(refused, "http://127.0.0.1:9/x.pth")  # a test server restarting


def test_timeouts_and_resets_are_worth_a_retry() -> None:
    assert not is_offline_error(TimeoutError("timed out"), "https://huggingface.co/x")
    assert not is_offline_error(ConnectionResetError(errno.ECONNRESET, "reset"), "https://x.org/")
    assert is_offline_error(OSError(errno.ENETUNREACH, "Network is unreachable"), "https://x.org/")
    assert is_offline_error(socket.gaierror(-2, "Name or service not known"))


def test_check_reachable_fails_at_once_and_spares_loopback() -> None:
    started = time.perf_counter()
    with pytest.raises(NoNetworkError, match=r"cannot resolve weights\.unresolvable\.invalid") as info:
        check_reachable(UNRESOLVABLE)
    assert time.perf_counter() - started < 5
    assert info.value.hint and "--offline" in info.value.hint
    check_reachable("http://127.0.0.1:1/x")  # nothing to resolve
    check_reachable("http://localhost:1/x")
    assert is_loopback("::1") and not is_loopback("example.org")
