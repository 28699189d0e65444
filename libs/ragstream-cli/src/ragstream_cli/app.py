"""The ``ragstream`` command: its options, sub-commands and exit codes."""

from __future__ import annotations

from typing import Annotated

import typer

from ragstream_cli import collections, dead_letters, documents, secret_rotation
from ragstream_cli.backup import backup_command, restore_command
from ragstream_cli.chat import ask_command
from ragstream_cli.config import load_config
from ragstream_cli.consistency import verify_command
from ragstream_cli.errors import CliError
from ragstream_cli.ingest_view import ingest_command
from ragstream_cli.jobs import jobs_command
from ragstream_cli.runner import report_error

HELP = """Ingest documents, watch their jobs, manage documents and collections, ask questions;
back up and restore a deployment; rotate the key of stored secrets.

Servers and key come from RAGSTREAM_URL, RAGSTREAM_PROGRESS_URL, RAGSTREAM_CHAT_URL and
RAGSTREAM_API_KEY, else from a profile of ~/.config/ragstream/config.toml (--profile).

Exit codes: 0 ok; 1 something failed (a file, a job, a problem remains) or the server refused;
2 usage error; 3 a server is unreachable; 4 a server error; 130 interrupted.
"""

app = typer.Typer(
    name="ragstream",
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", envvar="RAGSTREAM_PROFILE", help="Profile of the config file.")
    ] = None,
) -> None:
    try:
        ctx.obj = load_config(profile=profile)
    except CliError as exc:
        report_error(exc, as_json=False)
        raise typer.Exit(int(exc.exit_code)) from None


app.command("ingest", no_args_is_help=True)(ingest_command)
app.command("jobs")(jobs_command)
app.command("ask", no_args_is_help=True)(ask_command)
app.command("verify")(verify_command)
app.command("backup", no_args_is_help=True)(backup_command)
app.command("restore", no_args_is_help=True)(restore_command)
app.add_typer(documents.app, name="docs")
app.add_typer(collections.app, name="collections")
app.add_typer(dead_letters.app, name="dlq")
app.add_typer(secret_rotation.app, name="secrets")


def main() -> None:
    """The console script."""
    app()
