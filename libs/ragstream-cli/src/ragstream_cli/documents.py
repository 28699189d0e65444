"""``ragstream docs``: list, show, versions, delete, re-embed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from ragstream_cli.api import Api, segment
from ragstream_cli.errors import ExitCode, Refused
from ragstream_cli.feed import wait_for_jobs
from ragstream_cli.render import emit_json, format_bytes, out_console, short_time, table
from ragstream_cli.runner import JsonOption, run

app = typer.Typer(help="Documents and their versions.", no_args_is_help=True)

WaitOption = Annotated[bool, typer.Option("--wait", "-w", help="Follow the jobs until each is done.")]


def versions_table(versions: list[dict[str, Any]], *, title: str | None = None) -> Any:
    rows = [
        (
            v["version"],
            v.get("label"),
            v["status"],
            v.get("chunk_count"),
            v.get("page_count"),
            format_bytes(v.get("size_bytes")),
            (v.get("sha256") or "")[:12],
            v.get("uploaded_by"),
            v.get("reason"),
            short_time(v.get("created_at")),
            v.get("error"),
        )
        for v in versions
    ]
    columns = ("version", "label", "status", "chunks", "pages", "size", "sha256", "by", "reason", "created", "error")
    return table(title, columns, rows, status_column=2)


@app.command("list")
def list_documents(
    ctx: typer.Context,
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """The newest version of each document of a collection."""

    async def work(api: Api) -> ExitCode:
        body = await api.call(
            "gateway", "GET", f"/v1/collections/{segment(collection)}/documents", params={"limit": limit}
        )
        if as_json:
            emit_json(body)
            return ExitCode.OK
        documents = body["documents"]
        if not documents:
            out_console().print(
                f"no documents in {escape(collection)}; add some with `ragstream ingest FILES -c {collection}`"
            )
            return ExitCode.OK
        rows = [
            (
                d["document_id"],
                d["file_name"],
                d["version"],
                d["status"],
                d.get("chunk_count"),
                format_bytes(d.get("size_bytes")),
                short_time(d.get("created_at"))[:10],
            )
            for d in documents
        ]
        columns = ("document", "file", "version", "status", "chunks", "size", "created")
        out_console().print(table(f"{collection}: {len(rows)} documents", columns, rows, status_column=3))
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("show")
def show_document(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="The document id.")],
    as_json: JsonOption = False,
) -> None:
    """A document: name, collection and every version."""

    async def work(api: Api) -> ExitCode:
        body = await api.call("gateway", "GET", f"/v1/documents/{segment(document_id)}")
        if as_json:
            emit_json(body)
            return ExitCode.OK
        console = out_console()
        console.print(f"[bold]{escape(body['file_name'])}[/] ({escape(document_id)})")
        console.print(f"collection: {escape(body['collection_id'])}")
        if body.get("source_url"):
            console.print(f"source: {escape(body['source_url'])}")
        if body.get("deleted_at"):
            console.print(f"[yellow]deleted at {escape(short_time(body['deleted_at']))}[/]")
        console.print(versions_table(body["versions"], title="versions"))
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("versions")
def document_versions(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="The document id.")],
    as_json: JsonOption = False,
) -> None:
    """Every version of a document, oldest first."""

    async def work(api: Api) -> ExitCode:
        body = await api.call("gateway", "GET", f"/v1/documents/{segment(document_id)}/versions")
        if as_json:
            emit_json(body)
        else:
            out_console().print(versions_table(body["versions"], title=f"versions of {document_id}"))
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


async def _finish(api: Api, rows: list[dict[str, Any]], *, wait: bool) -> None:
    """With ``wait``, the final status of each row's job (``status``, ``error``)."""
    jobs = [r["job_id"] for r in rows if r.get("job_id")]
    if not wait or not jobs:
        return
    final = await wait_for_jobs(api, jobs)
    for row in rows:
        job = final.get(row.get("job_id") or "")
        if job is not None:
            row["status"] = job["status"]
            row["error"] = (job.get("error") or {}).get("reason") or row.get("error")


def _outcome(rows: list[dict[str, Any]]) -> ExitCode:
    bad = {"refused", "failed", "cancelled"}
    return ExitCode.FAILED if any(r["status"] in bad for r in rows) else ExitCode.OK


@app.command("delete")
def delete_documents(
    ctx: typer.Context,
    document_ids: Annotated[list[str], typer.Argument(help="The documents to delete.")],
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel a running job of the document instead of refusing.")
    ] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete documents: their points and bytes go, the audit trail stays. Exit 1 if any is refused."""

    async def work(api: Api) -> ExitCode:
        rows: list[dict[str, Any]] = []
        for document_id in document_ids:
            try:
                body = await api.call(
                    "gateway",
                    "DELETE",
                    f"/v1/documents/{segment(document_id)}",
                    params={"cancel": "true" if cancel else None},
                )
            except Refused as exc:
                rows.append({"document_id": document_id, "status": "refused", "job_id": None, "error": str(exc)})
                continue
            rows.append({"document_id": document_id, "status": "deleting", "job_id": body["job_id"], "error": None})
        await _finish(api, rows, wait=wait)
        if as_json:
            emit_json({"documents": rows})
        else:
            cells = [(r["document_id"], r["status"], r["job_id"], r["error"]) for r in rows]
            out_console().print(table(None, ("document", "status", "job", "error"), cells, status_column=1))
        return _outcome(rows)

    run(ctx, work, as_json=as_json)


@app.command("reembed")
def reembed_documents(
    ctx: typer.Context,
    document_ids: Annotated[list[str], typer.Argument(help="The documents to parse and embed again.")],
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Parse and embed documents again (a new version each; the old one answers meanwhile)."""

    async def work(api: Api) -> ExitCode:
        body = await api.call("gateway", "POST", "/v1/documents/reembed", json_body={"document_ids": document_ids})
        rows: list[dict[str, Any]] = [
            {
                "document_id": j["document_id"],
                "file_name": j["file_name"],
                "version": j["version"],
                "job_id": j["job_id"],
                "status": "accepted",
                "error": None,
            }
            for j in body["jobs"]
        ]
        rows += [
            {
                "document_id": e["document_id"],
                "version": None,
                "job_id": None,
                "status": "refused",
                "error": e["detail"],
            }
            for e in body["errors"]
        ]
        await _finish(api, rows, wait=wait)
        if as_json:
            emit_json({"documents": rows})
        else:
            cells = [
                (r["document_id"], r.get("file_name"), r["version"], r["status"], r["job_id"], r["error"]) for r in rows
            ]
            columns = ("document", "file", "version", "status", "job", "error")
            out_console().print(table(None, columns, cells, status_column=3))
        return _outcome(rows)

    run(ctx, work, as_json=as_json)
