"""Running one command: its configuration, an HTTP client, and the translation of every error
into a message (never a traceback) and an exit code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
import typer

from ragstream_cli.api import Api
from ragstream_cli.config import Config, load_config
from ragstream_cli.errors import CliError, ExitCode
from ragstream_cli.render import emit_json, err_console

#: the ``--json`` option every command has
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]


def config_of(ctx: typer.Context) -> Config:
    """The configuration of this invocation (loaded once, by the root command's options)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Config):
        root.obj = load_config(profile=None)
    return root.obj


def report_error(error: CliError, *, as_json: bool) -> None:
    """The error on standard error: a line for people, a JSON object with ``--json``."""
    if as_json:
        emit_json(error.as_json())
    err_console().print(f"[bold red]error:[/] {error}", markup=True, highlight=False, soft_wrap=True)


def run(ctx: typer.Context, work: Callable[[Api], Awaitable[ExitCode | None]], *, as_json: bool = False) -> None:
    """Run ``work`` with an API client; exit with what it returns, or with its error's code."""
    try:
        config = config_of(ctx)

        async def main() -> ExitCode | None:
            timeout = httpx.Timeout(60.0, connect=10.0)
            async with httpx.AsyncClient(timeout=timeout) as http:
                return await work(Api(config, http))

        code = asyncio.run(main())
    except CliError as exc:
        report_error(exc, as_json=as_json)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        err_console().print("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    raise typer.Exit(int(code or ExitCode.OK))
