"""``ragstream dlq``: what the stages gave up on, and replaying it after a fix."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ragstream_cli.api import Api
from ragstream_cli.errors import ExitCode, Refused
from ragstream_cli.render import emit_json, out_console, short_time, table
from ragstream_cli.runner import JsonOption, run

app = typer.Typer(help="Dead letters: messages a stage gave up on.", no_args_is_help=True)


@app.command("list")
def list_dead_letters(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option("--stage", help="Only this stage's (parsing, embedding, ...).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Dead letters, newest first: sequence, stage, reason, deliveries, job and file."""

    async def work(api: Api) -> ExitCode:
        body = await api.call("gateway", "GET", "/v1/dead-letters", params={"stage": stage, "limit": limit})
        if as_json:
            emit_json(body)
            return ExitCode.OK
        letters: list[dict[str, Any]] = body["dead_letters"]
        if not letters:
            out_console().print("no dead letters")
            return ExitCode.OK
        rows = [
            (d["sequence"], d["stage"], d.get("file_name"), d.get("collection_id"), d["deliveries"], d["reason"],
             d.get("job_id"), short_time(d.get("dead_lettered_at")), short_time(d.get("replayed_at")))
            for d in letters
        ]  # fmt: skip
        columns = ("seq", "stage", "file", "collection", "deliveries", "reason", "job", "at", "replayed")
        out_console().print(table(f"{len(rows)} dead letters", columns, rows))
        return ExitCode.OK

    run(ctx, work, as_json=as_json)


@app.command("replay")
def replay_dead_letters(
    ctx: typer.Context,
    sequences: Annotated[list[int], typer.Argument(help="Sequence numbers (from `ragstream dlq list`).")],
    as_json: JsonOption = False,
) -> None:
    """Replay dead letters after a fix: a failed job runs again, or the event is published again."""

    async def work(api: Api) -> ExitCode:
        rows: list[dict[str, Any]] = []
        for sequence in sequences:
            try:
                body = await api.call("gateway", "POST", f"/v1/dead-letters/{sequence}:replay")
                rows.append({"sequence": sequence, "status": "replayed", **body})
            except Refused as exc:
                rows.append({"sequence": sequence, "status": "refused", "error": str(exc)})
        if as_json:
            emit_json({"replays": rows})
        else:
            cells = [(r["sequence"], r["status"], r.get("replayed"), r.get("job_id"), r.get("error")) for r in rows]
            out_console().print(table(None, ("seq", "status", "what", "job", "error"), cells, status_column=1))
        return ExitCode.FAILED if any(r["status"] == "refused" for r in rows) else ExitCode.OK

    run(ctx, work, as_json=as_json)
