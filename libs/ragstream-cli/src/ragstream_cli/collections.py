"""``ragstream collections``: list, create, show, delete."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from ragstream_cli.api import Api, segment
from ragstream_cli.errors import ExitCode, Refused
from ragstream_cli.render import emit_json, format_seconds, format_value, out_console, short_time, table
from ragstream_cli.runner import JsonOption, run


class Chunking(StrEnum):
    structure = "structure"
    tokens = "tokens"
    markdown = "markdown"


app = typer.Typer(help="Collections and their settings.", no_args_is_help=True)


@app.command("list")
def list_collections(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every collection, by id."""

    async def work(api: Api) -> ExitCode:
        collections: list[dict[str, Any]] = []
        after: str | None = ""
        while after is not None:
            page = await api.call("gateway", "GET", "/v1/collections", params={"after": after, "limit": 1000})
            collections += page["collections"]
            after = page["next_after"]
        if as_json:
            emit_json({"collections": collections})
        elif not collections:
            out_console().print("no collections yet; `ragstream collections create NAME` or ingest into a new one")
        else:
            rows = [
                (c["collection_id"], c["document_count"], c["chunking"], c["embedding_model"],
                 short_time(c["created_at"]), c["description"])
                for c in collections
            ]  # fmt: skip
            columns = ("collection", "documents", "chunking", "model", "created", "description")
            out_console().print(table(f"{len(rows)} collections", columns, rows))
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("create")
def create_collection(
    ctx: typer.Context,
    collection_id: Annotated[str, typer.Argument(help="1-64 letters, digits, '_', '-' or '.'.")],
    description: Annotated[str, typer.Option("--description", help="Shown in lists.")] = "",
    chunking: Annotated[
        Chunking,
        typer.Option(
            "--chunking",
            help="structure (headings kept), tokens (fixed windows) or markdown (one chunk per section).",
        ),
    ] = Chunking.structure,
    embed_columns: Annotated[
        list[str] | None, typer.Option("--embed-column", help="Tabular sources: a column to embed (repeat).")
    ] = None,
    context_columns: Annotated[
        list[str] | None, typer.Option("--context-column", help="Tabular sources: a column shown, not embedded.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a collection; exit 1 if it exists."""

    async def work(api: Api) -> ExitCode:
        body = {
            "collection_id": collection_id,
            "description": description,
            "chunking": chunking.value,
            "embed_columns": embed_columns or [],
            "context_columns": context_columns or [],
        }
        created = await api.call("gateway", "POST", "/v1/collections", json_body=body)
        if as_json:
            emit_json(created)
        else:
            out_console().print(f"created collection [bold]{escape(collection_id)}[/] (chunking {chunking.value})")
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("show")
def show_collection(
    ctx: typer.Context,
    collection_id: Annotated[str, typer.Argument(help="The collection.")],
    as_json: JsonOption = False,
) -> None:
    """A collection's settings and the progress of its jobs."""

    async def work(api: Api) -> ExitCode:
        body = await api.call("gateway", "GET", f"/v1/collections/{segment(collection_id)}")
        progress = await api.call("progress", "GET", f"/v1/collections/{segment(collection_id)}/progress")
        if as_json:
            emit_json({**body, "progress": progress})
            return ExitCode.OK
        console = out_console()
        console.print(f"[bold]{escape(collection_id)}[/]")
        for key in ("description", "documents", "chunking", "embedding_model", "embed_columns", "context_columns",
                    "created_by", "created_at"):  # fmt: skip
            value = body.get("document_count") if key == "documents" else body.get(key)
            console.print(f"  {key}: {escape(format_value(value))}")
        jobs = progress.get("counts") or {}
        percent = progress.get("percent") or {}
        summary = ", ".join(f"{n} {state}" for state, n in jobs.items() if n) or "none"
        console.print(f"  jobs: {progress.get('total', 0)} ({escape(summary)})")
        eta = f", eta {format_seconds(progress['eta_seconds'])}" if progress.get("eta_seconds") else ""
        console.print(f"  percent: {format_value(percent.get('jobs'))}% of jobs{eta}")
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("delete")
def delete_collection(
    ctx: typer.Context,
    collection_id: Annotated[str, typer.Argument(help="The collection.")],
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Delete its documents too (else refused if it has any).")
    ] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="With --cascade: cancel running jobs instead of refusing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a collection; refused (exit 1) while it has documents, unless --cascade."""

    async def work(api: Api) -> ExitCode:
        params = {"cascade": "true" if cascade else None, "cancel": "true" if cancel else None}
        try:
            body = await api.call("gateway", "DELETE", f"/v1/collections/{segment(collection_id)}", params=params)
        except Refused as exc:
            if exc.status == 409 and not cascade:
                raise Refused(f"{exc}; pass --cascade", status=exc.status, body=exc.body) from None
            raise
        if as_json:
            emit_json(body)
        else:
            jobs = len(body.get("delete_job_ids") or [])
            out_console().print(f"deleted collection [bold]{escape(collection_id)}[/] ({jobs} documents being deleted)")
        return ExitCode.OK

    run(ctx, work, as_json=as_json)
