"""Exit codes: the contract between the CLI, the supervisor and its workers."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses (sysexits.h where one fits)."""

    OK = 0
    FAILURE = 1
    WORKER_BOOT = 3
    USAGE = 64
    SOFTWARE = 70
    CONFIG = 78
