"""``ragstream secrets rotate``: seal every stored tenant secret again with the first key of
``RAGSTREAM_SECRET_KEYS`` (step 2 of the rotation in the README's Security section).

Like backup and restore this talks to a server itself, not to a REST API: PostgreSQL, with the
chat service's settings (``RAGSTREAM_POSTGRES_URL``, ``RAGSTREAM_SECRET_KEYS``) and its code
(``ragstream-chat``, installed by ``make install``); it is the same as
``python -m ragstream_chat rotate-secrets``. Idempotent. Exit codes: 0 every secret is under the
first key; 1 some secret no configured key opens (listed by tenant and collection: keep the old
key); 2 no key or a malformed one configured; 3 PostgreSQL unreachable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from ragstream_cli.errors import CliError, ExitCode, Refused, Unreachable, UsageProblem
from ragstream_cli.render import emit_json, out_console, table
from ragstream_cli.runner import JsonOption, report_error

app = typer.Typer(help="Tenant secrets stored encrypted (a collection's provider API key).", no_args_is_help=True)


def _rotate() -> dict[str, Any]:
    try:
        import psycopg
        import psycopg_pool
        from pydantic import ValidationError

        from ragstream_chat.main import rotate_secrets
        from ragstream_chat.settings import ChatSettings
        from ragstream_ops.cli import log_to_stderr
    except ImportError as exc:
        raise UsageProblem(
            f"secrets rotate needs the chat and ops packages ({exc.name} is missing): make install"
        ) from None
    log_to_stderr()
    try:
        settings = ChatSettings()
    except ValidationError as exc:  # the settings never echo a value: keys stay out of the message
        raise UsageProblem(f"the settings are refused: {exc}") from None
    if not settings.core.secret_keys.get_secret_value():
        raise UsageProblem("RAGSTREAM_SECRET_KEYS is not set: the new key first, then the old ones (comma-separated)")
    try:
        rotation = asyncio.run(rotate_secrets(settings))
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise Unreachable(f"PostgreSQL cannot be reached: {type(exc).__name__}") from None
    return {"rotated": rotation.rotated, "current": rotation.current, "unreadable": rotation.unreadable}


@app.command("rotate")
def rotate_command(as_json: JsonOption = False) -> None:
    """Seal every stored secret again with the first key of RAGSTREAM_SECRET_KEYS (idempotent)."""
    try:
        report = _rotate()
    except CliError as error:
        report_error(error, as_json=as_json)
        raise typer.Exit(int(error.exit_code)) from None
    if as_json:
        emit_json(report)
    else:
        rows = [("rotated", report["rotated"]), ("already current", report["current"]),
                ("unreadable", len(report["unreadable"]))]  # fmt: skip
        out_console().print(table("secrets sealed with the first key", ("secrets", "count"), rows))
    if report["unreadable"]:
        owners = ", ".join(f"{u['collection_id']} of {u['tenant_id']}" for u in report["unreadable"])
        report_error(Refused(f"no configured key opens the secrets of: {owners}; keep the old key"), as_json=False)
        raise typer.Exit(int(ExitCode.FAILED))
    raise typer.Exit(int(ExitCode.OK))
