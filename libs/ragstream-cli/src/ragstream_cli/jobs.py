"""``ragstream jobs``: jobs newest first, or every change live."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ragstream_cli.api import Api
from ragstream_cli.errors import ExitCode
from ragstream_cli.feed import FINAL, job_changes
from ragstream_cli.render import (
    emit_json,
    emit_json_line,
    format_seconds,
    out_console,
    short_time,
    styled_status,
    table,
)
from ragstream_cli.runner import JsonOption, run

COLUMNS = ("job", "file", "collection", "status", "%", "eta", "updated", "error")


def job_row(job: dict[str, Any]) -> tuple[Any, ...]:
    error = job.get("error") or {}
    status = str(job["status"])
    if job.get("stage") and job["stage"] != status:
        status += f" ({job['stage']})"
    if job.get("paused"):
        status += " paused"
    return (
        job["job_id"],
        job.get("file_name"),
        job.get("collection_id"),
        status,
        f"{job.get('percent') or 0:.0f}%",
        format_seconds(job.get("eta_seconds")) if job["status"] not in FINAL else "-",
        short_time(job.get("updated_at"))[11:16],
        error.get("reason"),
    )


def jobs_table(jobs: list[dict[str, Any]], *, title: str | None = None, collection: str | None = None) -> Table:
    """The jobs; without the collection column when every job is of ``collection``."""
    keep = [i for i, name in enumerate(COLUMNS) if not (collection and name == "collection")]
    rows = [[row[i] for i in keep] for row in (job_row(j) for j in jobs)]
    return table(title, [COLUMNS[i] for i in keep], rows, status_column=keep.index(3))


def jobs_command(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection's jobs.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="Only these statuses, comma-separated (failed,cancelled).")
    ] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch's jobs.")] = None,
    document: Annotated[str | None, typer.Option("--document", "-d", help="Only this document's jobs.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Jobs shown.")] = 20,
    live: Annotated[
        bool, typer.Option("--live", help="Follow every change until Ctrl-C (with --json: one JSON line per change).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Jobs newest first: status, stage, percent, ETA and error; --live follows them as they change."""

    async def listing(api: Api) -> ExitCode:
        params = {
            "collection_id": collection,
            "status": status,
            "batch_id": batch,
            "document_id": document,
            "limit": limit,
        }
        body = await api.call("progress", "GET", "/v1/jobs", params=params)
        if as_json:
            emit_json(body)
        elif not body["jobs"]:
            out_console().print("no jobs match; upload files with `ragstream ingest FILES -c COLLECTION`")
        else:
            out_console().print(jobs_table(body["jobs"], collection=collection))
        return ExitCode.OK

    async def following(api: Api) -> ExitCode:
        console = out_console()
        seen: dict[str, dict[str, Any]] = {}
        statuses = set(status.split(",")) if status else None
        feed = job_changes(api, collection_id=collection, batch_id=batch)

        def view() -> Table:
            newest = sorted(seen.values(), key=lambda j: j.get("updated_at") or "", reverse=True)[:limit]
            return jobs_table(newest, title="jobs (live; Ctrl-C to stop)", collection=collection)

        screen = Live(view(), console=console, auto_refresh=False) if console.is_terminal and not as_json else None
        with screen or contextlib.nullcontext():
            async for job in feed:
                if document and job.get("document_id") != document:
                    continue
                if statuses and job["status"] not in statuses:
                    continue
                seen[job["job_id"]] = job
                if as_json:
                    emit_json_line(job)
                elif screen is not None:
                    screen.update(view(), refresh=True)
                else:
                    error = (job.get("error") or {}).get("reason")
                    console.print(
                        f"{escape(short_time(job.get('updated_at')))} {escape(str(job.get('file_name')))} "
                        f"{styled_status(job['status'])} {job.get('percent') or 0:.0f}%"
                        + (f" {escape(error)}" if error else "")
                    )
        return ExitCode.OK

    if live:
        try:
            run(ctx, following, as_json=as_json)
        except typer.Exit as done:
            if done.exit_code == ExitCode.INTERRUPTED:  # Ctrl-C is how a live view ends
                raise typer.Exit(0) from None
            raise
    run(ctx, listing, as_json=as_json)
