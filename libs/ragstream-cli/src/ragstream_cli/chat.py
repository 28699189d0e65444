"""``ragstream ask``: a question to a collection, the answer streamed, its citations after."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ragstream_cli.api import Api, event_json, segment
from ragstream_cli.errors import ExitCode, ServerFailed
from ragstream_cli.render import emit_json, out_console, table
from ragstream_cli.runner import run


def citations_table(citations: list[dict[str, Any]], used: set[int]) -> Table:
    """Each citation: number (starred when the answer rests on it), file, where, score, document."""
    rows = []
    for c in citations:
        where = " > ".join(c.get("heading_path") or [])
        if c.get("page"):
            where = f"{where}, p. {c['page']}" if where else f"p. {c['page']}"
        number = f"[{c['number']}]" + ("*" if c["number"] in used else "")
        rows.append(
            (number, c.get("file_name"), where, f"{c.get('score', 0):.2f}", f"{c['document_id']} v{c['version']}")
        )
    return table("sources", ("#", "file", "where", "score", "document"), rows)


async def ask(
    api: Api,
    collection: str,
    question: str,
    *,
    top_k: int | None = None,
    conversation_id: str | None = None,
    as_json: bool = False,
) -> ExitCode:
    """Stream the answer to standard output as it comes; the citations once it is done."""
    console = out_console()
    body: dict[str, Any] = {"question": question, "stream": True}
    if top_k is not None:
        body["top_k"] = top_k
    if conversation_id:
        body["conversation_id"] = conversation_id
    result: dict[str, Any] | None = None
    async with api.events("chat", "POST", f"/v1/collections/{segment(collection)}/chat", json_body=body) as events:
        async for event in events:
            data = event_json(event)
            if event.event == "delta" and not as_json:
                console.print(data.get("text", ""), end="", markup=False, highlight=False)
            elif event.event == "error":
                raise ServerFailed(f"the answer broke off: {data.get('detail') or data.get('error')}")
            elif event.event == "done":
                result = data
    if result is None:
        raise ServerFailed("the answer stream ended before its 'done' event")
    if as_json:
        emit_json(result)
        return ExitCode.OK
    console.print()
    used = {n for s in result.get("sentences") or [] for n in s.get("citations") or []}
    if result.get("citations"):
        console.print(citations_table(result["citations"], used))
    console.print(f"[dim]conversation {escape(result['conversation_id'])}; continue with --conversation[/]")
    return ExitCode.OK


def ask_command(
    ctx: typer.Context,
    collection: Annotated[str, typer.Argument(help="The collection to answer from.")],
    question: Annotated[str, typer.Argument(help="The question, quoted.")],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=50, help="Passages to retrieve.")] = None,
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", help="Continue this conversation (its id is printed after an answer)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON once done.")] = False,
) -> None:
    """Ask a collection; the answer streams, its sources follow (* marks those the answer rests on)."""
    run(
        ctx,
        lambda api: ask(api, collection, question, top_k=top_k, conversation_id=conversation, as_json=as_json),
        as_json=as_json,
    )
