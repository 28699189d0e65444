"""``python -m ragstream_ops backup DIR`` / ``restore DIR [--force]``.

Settings come from the environment like the services' (``RAGSTREAM_NATS_URL``,
``RAGSTREAM_POSTGRES_URL``, ``RAGSTREAM_DATA_DIR``, ``RAGSTREAM_OBJECT_STORE``...). Prints a JSON
summary on success; on failure one line saying what was wrong. Exit codes: 0 done, 2 the backup
cannot be used (missing or corrupt), 3 the target holds data (use another directory, or
``--force`` for a restore), 4 a server or program is unavailable, 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

from ragstream_core.errors import Conflict, DependencyUnavailable, InvalidInput
from ragstream_core.settings import CoreSettings
from ragstream_ops.backup import backup, restore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ragstream_ops", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("backup", help="write a backup of the running deployment into DIR (new or empty)")
    make.add_argument("directory", type=Path, metavar="DIR")
    make.add_argument("--snapshot-timeout", type=float, default=600.0, help="seconds the embedder has for the index")
    make.add_argument(
        "--skip-index", action="store_true", help="leave the index out (a Qdrant server: use its own snapshots)"
    )
    back = commands.add_parser("restore", help="restore DIR into the deployment (servers up, services stopped)")
    back.add_argument("directory", type=Path, metavar="DIR")
    back.add_argument("--force", action="store_true", help="replace a deployment that holds data")
    return parser


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (not the stream of the moment of
    configuration, which may be closed by then)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_to_stderr(level: int = logging.WARNING) -> None:
    """Log lines (structlog's, the libraries') on standard error from ``level`` up: standard
    output is the summary's, which scripts parse. For a process's entry point: it configures
    logging globally."""
    logging.basicConfig(stream=_Stderr(), level=level, format="%(message)s")
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        wrapper_class=structlog.make_filtering_bound_logger(level),
    )


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = CoreSettings()
    try:
        if args.command == "backup":
            manifest = asyncio.run(
                backup(args.directory, settings, snapshot_timeout_s=args.snapshot_timeout, skip_index=args.skip_index)
            )
            summary = {"backup": str(args.directory), **manifest.to_json()}
        else:
            manifest = asyncio.run(restore(args.directory, settings, force=args.force))
            summary = {"restored": str(args.directory), "seconds": manifest.restore_seconds, **manifest.to_json()}
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except Conflict as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 3
    except DependencyUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 4
    except Exception as exc:  # a failed pg_dump, a server gone: one line, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(json.dumps(brief(summary), indent=2))  # noqa: T201
    return 0


def brief(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` without the per-file checksums and per-table counts (they stay in the manifest)."""
    parts = {
        name: {k: v for k, v in part.items() if k not in ("files", "tables")}
        for name, part in summary.get("parts", {}).items()
    }
    return {**summary, "parts": parts}


def main() -> None:
    log_to_stderr()  # the process's, not run()'s: a caller in-process keeps its own logging
    sys.exit(run())
