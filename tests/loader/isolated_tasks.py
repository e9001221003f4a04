"""Tasks for the isolated-pool tests, importable by spawned workers (no torch here).

Each input is ``(what, argument)``; what a real reader might do to its process on a bad file.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time


def run(item: tuple[str, int]) -> tuple[str, int, int]:
    what, arg = item
    if what == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV, as a C parser's stack overflow would
    elif what == "sleep":
        time.sleep(arg)
    elif what == "allocate":  # private memory: RLIMIT_DATA refuses it before it is touched
        block = bytearray(arg)
        block[::4096] = b"\x01" * len(block[::4096])
    elif what == "touch-shared":  # shared memory: not in RLIMIT_DATA, so the RSS watchdog
        shared = mmap.mmap(-1, arg)
        for offset in range(0, arg, mmap.PAGESIZE):
            shared[offset] = 1
        time.sleep(30)
    elif what == "raise":
        raise RecursionError("maximum recursion depth exceeded")
    elif what == "exit":
        os._exit(arg)
    return what, arg, os.getpid()


def warm_up(_: object) -> None:
    os.environ["ISOLATED_TASKS_WARM"] = "1"


def run_warm(item: tuple[str, int]) -> str | None:
    return os.environ.get("ISOLATED_TASKS_WARM")
