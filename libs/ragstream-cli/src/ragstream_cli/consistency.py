"""``ragstream verify``: the gateway's consistency check of documents, versions, stored objects
and index points, and its repair."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from ragstream_cli.api import Api
from ragstream_cli.errors import ExitCode
from ragstream_cli.render import emit_json, out_console, table
from ragstream_cli.runner import JsonOption, run

PROBLEM_COLUMNS = ("kind", "collection", "document", "version", "key", "detail", "repairable")


def problem_rows(problems: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (p.get("kind"), p.get("collection_id"), p.get("document_id"), p.get("version"), p.get("key"), p.get("detail"),
         p.get("repairable"))
        for p in problems
    ]  # fmt: skip


def print_report(console: Console, report: dict[str, Any], *, repaired: bool) -> None:
    checked = report.get("checked") or {}
    counted = ", ".join(f"{n} {what}" for what, n in checked.items())
    console.print(f"checked {counted or 'nothing'}")
    if repaired and report.get("repaired"):
        console.print(table(f"repaired {len(report['repaired'])}", PROBLEM_COLUMNS, problem_rows(report["repaired"])))
    problems = report.get("problems") or []
    if problems:
        console.print(table(f"{len(problems)} problems", PROBLEM_COLUMNS, problem_rows(problems)))
    if report.get("consistent"):
        console.print("[green]consistent[/]")
    else:
        hint = "" if repaired else "; `ragstream verify --repair` repairs those marked repairable"
        console.print(f"[bold red]not consistent[/]{hint}")


def verify_command(
    ctx: typer.Context,
    repair: Annotated[bool, typer.Option("--repair", help="Repair what can be repaired, then report.")] = False,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check that documents, versions, stored objects and index points agree; exit 1 while problems remain."""

    async def work(api: Api) -> ExitCode:
        if repair:
            body = {"collection_id": collection} if collection else None
            report = await api.call("gateway", "POST", "/v1/admin/consistency/repair", json_body=body)
        else:
            report = await api.call("gateway", "GET", "/v1/admin/consistency", params={"collection_id": collection})
        if as_json:
            emit_json(report)
        else:
            print_report(out_console(), report, repaired=repair)
        return ExitCode.OK if report.get("consistent") else ExitCode.FAILED

    run(ctx, work, as_json=as_json)
