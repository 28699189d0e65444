"""``ragstream backup DIR`` and ``ragstream restore DIR``: a whole deployment (JetStream streams,
the embedded index, PostgreSQL, the object store) into one directory and back.

Unlike the other commands these talk to the servers themselves, not to the REST APIs: they need
the ``ragstream-ops`` package (installed by ``make install``) and the services' settings
(``RAGSTREAM_NATS_URL``, ``RAGSTREAM_POSTGRES_URL``, ``RAGSTREAM_DATA_DIR``,
``RAGSTREAM_OBJECT_STORE``...). Exit codes as everywhere: 2 for a backup directory that is
missing or corrupt, 1 for a refusal (the target holds data, services still running), 3 for a
server that cannot be reached, 4 for a server or program that failed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ragstream_cli.errors import CliError, ExitCode, Refused, ServerFailed, Unreachable, UsageProblem
from ragstream_cli.render import emit_json, out_console, table
from ragstream_cli.runner import JsonOption, report_error

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from ragstream_ops.manifest import Manifest

PART_COLUMNS = ("part", "contents", "seconds")


def part_rows(parts: dict[str, dict[str, Any]], seconds: dict[str, float] | None = None) -> list[tuple[Any, ...]]:
    """One row per part: what it holds (its counts) and how long it took."""
    rows = []
    for name, part in parts.items():
        counts = ", ".join(f"{v} {k}" for k, v in part.items() if isinstance(v, int | bool) and k != "seconds")
        took = (seconds or {}).get(name, part.get("seconds"))
        rows.append((name, counts or "-", "-" if took is None else f"{took:.2f}"))
    return rows


def _execute(work: Callable[[], Coroutine[Any, Any, dict[str, Any]]], *, as_json: bool, title: str) -> None:
    try:
        from ragstream_ops.cli import brief, log_to_stderr
    except ImportError:
        error: CliError = UsageProblem(
            "backup and restore need the ragstream-ops package: `pip install -e libs/ragstream-ops` (make install)"
        )
        report_error(error, as_json=as_json)
        raise typer.Exit(int(error.exit_code)) from None
    from ragstream_core.errors import Conflict, DependencyUnavailable, InvalidInput

    log_to_stderr()
    try:
        summary = brief(asyncio.run(work()))
    except InvalidInput as exc:
        error = UsageProblem(str(exc))
    except Conflict as exc:
        error = Refused(str(exc))
    except DependencyUnavailable as exc:
        error = Unreachable(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:  # a failed pg_dump, a server gone mid-way: one line, not a traceback
        error = ServerFailed(f"{type(exc).__name__}: {exc}")
    else:
        if as_json:
            emit_json(summary)
        else:
            console = out_console()
            console.print(table(title, PART_COLUMNS, part_rows(summary["parts"], summary.get("seconds"))))
        raise typer.Exit(int(ExitCode.OK))
    report_error(error, as_json=as_json)
    raise typer.Exit(int(error.exit_code))


def _settings() -> Any:
    from ragstream_core.settings import CoreSettings

    return CoreSettings()


def backup_command(
    directory: Annotated[Path, typer.Argument(help="Where the backup goes: a new or empty directory.")],
    skip_index: Annotated[
        bool, typer.Option("--skip-index", help="Leave the index out (a Qdrant server: use its own snapshots).")
    ] = False,
    snapshot_timeout: Annotated[
        float, typer.Option("--snapshot-timeout", help="Seconds the embedder has to archive the index.")
    ] = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Back up the running deployment: streams, index, PostgreSQL and objects, with a manifest."""

    async def work() -> dict[str, Any]:
        from ragstream_ops.backup import backup

        manifest: Manifest = await backup(
            directory, _settings(), snapshot_timeout_s=snapshot_timeout, skip_index=skip_index
        )
        return {"backup": str(directory), **manifest.to_json()}

    _execute(work, as_json=as_json, title=f"backed up into {directory}")


def restore_command(
    directory: Annotated[Path, typer.Argument(help="A directory `ragstream backup` wrote.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a deployment that holds data.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup (servers up, the five services stopped); refuses a deployment with data
    unless --force."""

    async def work() -> dict[str, Any]:
        from ragstream_ops.backup import restore

        manifest: Manifest = await restore(directory, _settings(), force=force)
        return {"restored": str(directory), "seconds": manifest.restore_seconds, **manifest.to_json()}

    _execute(work, as_json=as_json, title=f"restored from {directory}")
