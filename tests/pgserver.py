"""A throwaway PostgreSQL server for the test session.

Started with the distribution's binaries (``/usr/lib/postgresql/<v>/bin`` or
``SECURITYNET_TEST_PG_BIN``) in a fresh data directory, listening on 127.0.0.1 only, and
stopped at the end. PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user through ``runuser``. ``SECURITYNET_TEST_PG_URL`` uses an existing server
instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def find_pg_bin() -> Path | None:
    explicit = os.environ.get("SECURITYNET_TEST_PG_BIN")
    if explicit:
        return Path(explicit)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh PostgreSQL server (database ``postgres``)."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL binaries not found")
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="securitynet-pg-"))
    data, sock = base / "data", base / "sock"
    data.mkdir()
    sock.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(base, 0o755)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(pg_bin / args[0]), *args[1:]]
        if as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    port = _free_port()
    user = "postgres" if as_root else os.environ.get("USER", "postgres")
    run("initdb", "-D", str(data), "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8")
    run(
        "pg_ctl",
        "-D",
        str(data),
        "-w",
        "-t",
        "60",
        "-l",
        str(base / "log"),
        "start",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    )
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
