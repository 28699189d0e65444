"""Exit codes and the errors that end a command.

Hierarchy::

    CliError                 any error that ends a command with a message and an exit code
    ├── UsageProblem         bad arguments, paths or configuration (exit 2)
    ├── Unreachable          a server could not be reached or did not answer (exit 3)
    ├── Refused              a server refused the request: 4xx (exit 1)
    └── ServerFailed         a server failed: 5xx, or an answer that cannot be read (exit 4)

Work that completes but fails (a file that failed, problems that remain) is exit 1 without an
exception: the command prints what happened and returns ``ExitCode.FAILED``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What ``ragstream`` exits with; scripts may rely on these."""

    OK = 0
    FAILED = 1  # work failed (a file, a job, a consistency problem) or the server refused (4xx)
    USAGE = 2  # bad arguments, paths or configuration
    UNREACHABLE = 3  # a server could not be reached
    SERVER_ERROR = 4  # a server failed (5xx) or answered something unreadable
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """An error that ends the command: ``str(error)`` is what the user reads."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def as_json(self) -> dict[str, Any]:
        """The error for ``--json`` output."""
        out: dict[str, Any] = {"error": type(self).__name__, "detail": str(self), "exit_code": int(self.exit_code)}
        if self.status is not None:
            out["status"] = self.status
        if isinstance(self.body, dict):
            out["response"] = self.body
        return out


class UsageProblem(CliError):
    """Bad arguments, paths or configuration."""

    exit_code = ExitCode.USAGE


class Unreachable(CliError):
    """A server could not be reached, or did not answer in time."""

    exit_code = ExitCode.UNREACHABLE


class Refused(CliError):
    """The server refused the request (4xx) and said why."""

    exit_code = ExitCode.FAILED


class ServerFailed(CliError):
    """The server failed (5xx) or answered something that cannot be read."""

    exit_code = ExitCode.SERVER_ERROR
