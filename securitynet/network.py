"""Telling "there is no network" apart from "the server had a bad moment".

A retry helps with a 503 or a dropped connection; it cannot help when the host name does
not resolve or nothing routes to it. Every HTTP path (the loader's downloads, the Hub's
metadata, the registry tables) asks :func:`is_offline_error` before retrying, and
:func:`check_reachable` once per host before its first request, so that offline a command
fails at once with one line and a hint instead of retrying for half a minute.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from securitynet.errors import NoNetworkError

#: errno values that mean "no route to anywhere", not "this server is unwell".
_OFFLINE_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)
#: What the HTTP stacks (urllib3, httpx, huggingface_hub) say when the name does not resolve.
_DNS_MESSAGES = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname provided",
    "failed to resolve",
    "no address associated with hostname",
    "getaddrinfo failed",
    "network is unreachable",
    "no route to host",
)


def host_of(url: str) -> str | None:
    return urlsplit(url).hostname


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (tests' servers are never "the network")."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, and the ``reason`` / first argument
    that urllib3 and requests nest their own errors in."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 32:
        item = todo.pop()
        if any(item is s for s in seen):
            continue
        seen.append(item)
        for nested in (
            item.__cause__,
            item.__context__,
            getattr(item, "reason", None),
            *(a for a in getattr(item, "args", ()) if isinstance(a, BaseException)),
        ):
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def is_offline_error(exc: BaseException, url: str | None = None) -> bool:
    """Whether ``exc`` (raised while reaching ``url``) means there is no network to retry on:
    the name does not resolve, the network or host is unreachable, or a non-loopback host
    refuses the connection (a proxy-less sandbox). Timeouts and resets are not: they pass."""
    remote = not is_loopback(host_of(url)) if url else True
    for item in _chain(exc):
        if isinstance(item, socket.gaierror):
            return True
        if isinstance(item, ConnectionRefusedError) and remote:
            return True
        if isinstance(item, OSError) and item.errno in _OFFLINE_ERRNOS:
            return True
        text = str(item).lower()
        if any(m in text for m in _DNS_MESSAGES):
            return True
        if remote and "connection refused" in text:
            return True
    return False


@lru_cache(maxsize=64)
def _resolves(host: str, port: int) -> str | None:
    """None when ``host`` resolves, else why not (cached for the process: one look-up a host)."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return str(exc)
    except (OSError, UnicodeError) as exc:
        return str(exc)
    return None


def check_reachable(url: str) -> None:
    """Raise :class:`NoNetworkError` at once when ``url``'s host name does not resolve.

    Loopback hosts and literal IP addresses are not checked (nothing to resolve).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host or is_loopback(host):
        return
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443
    reason = _resolves(host, port)
    if reason is not None:
        raise NoNetworkError(f"no network: cannot resolve {host} ({reason})", url=url, host=host)


def no_network(exc: BaseException, url: str) -> NoNetworkError:
    """The one-line error for an ``exc`` that :func:`is_offline_error` recognised."""
    reason = next(
        (str(item) for item in reversed(_chain(exc)) if str(item)), exc.__class__.__name__
    )
    return NoNetworkError(f"no network: cannot reach {host_of(url) or url} ({reason})", url=url)
