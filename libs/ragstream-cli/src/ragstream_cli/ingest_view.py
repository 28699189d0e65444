"""The ``ingest`` command: progress bars per file and overall while it runs, a summary after."""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ragstream_cli.api import Api
from ragstream_cli.errors import ExitCode
from ragstream_cli.ingest import (
    FileResult,
    counts,
    expand_paths,
    ingest,
    ingest_exit_code,
    new_batch_id,
    summary_table,
)
from ragstream_cli.render import emit_json, format_bytes, format_seconds, out_console, styled_status
from ragstream_cli.runner import JsonOption, run


class Priority(StrEnum):
    """The CLI's lanes (``low`` is the gateway's ``bulk``)."""

    high = "high"
    normal = "normal"
    low = "low"


class IngestBars:
    """A bar per file (upload, then the job's percent and stage) and one for all files."""

    def __init__(self, console: Console, total_files: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=30),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.overall = self.progress.add_task("[bold]all files", total=100.0 * total_files, status="")
        self.tasks: dict[Path, TaskID] = {}
        self.results: dict[Path, FileResult] = {}

    def __enter__(self) -> IngestBars:
        self.progress.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.progress.stop()

    def update(self, result: FileResult) -> None:
        self.results[result.path] = result
        task = self.tasks.get(result.path)
        if task is None:
            task = self.tasks[result.path] = self.progress.add_task(escape(result.file_name), total=100.0, status="")
        if result.status == "uploading":
            sent = 100.0 * result.uploaded_bytes / result.size if result.size else 100.0
            status = f"uploading {sent:.0f}% of {format_bytes(result.size)}"
        else:
            status = styled_status(result.status)
            if result.stage and result.stage != result.status and result.status not in ("indexed", "unchanged"):
                status += f" ({escape(result.stage)})"
            if result.error:
                status += f" [red]{escape(result.error[:80])}[/]"
        done = 100.0 if result.final else result.percent
        self.progress.update(task, completed=done, status=status)
        finished = sum(1 for r in self.results.values() if r.final)
        self.progress.update(
            self.overall,
            completed=sum(100.0 if r.final else r.percent for r in self.results.values()),
            status=f"{finished}/{len(self.results)} done",
        )


class IngestLines:
    """Without a terminal: one line per file when it is done."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.reported: set[Path] = set()

    def __enter__(self) -> IngestLines:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def update(self, result: FileResult) -> None:
        if result.final and result.path not in self.reported:
            self.reported.add(result.path)
            error = f": {result.error}" if result.error else ""
            self.console.print(f"{escape(result.file_name)}: {styled_status(result.status)}{escape(error)}")


def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Files, directories or glob patterns ('docs/**/*.pdf').")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection to add the files to.")],
    priority: Annotated[
        Priority,
        typer.Option(
            "--priority",
            "-p",
            help="Lane of the jobs: high (interactive), normal, low (bulk imports).",
        ),
    ] = Priority.normal,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Follow the jobs until every file is done.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Process files again even if their bytes are known.")] = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=32, help="Uploads at once.")] = 4,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="With --wait: give up after this many seconds.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload files and, with --wait, follow them to the index; exit 1 if any failed or was refused."""

    async def work(api: Api) -> ExitCode:
        started = time.monotonic()
        files = expand_paths(paths)
        console = out_console()
        view: IngestBars | IngestLines | None = None
        if not as_json:
            view = IngestBars(console, len(files)) if console.is_terminal else IngestLines(console)
        batch_id = new_batch_id()
        seen: dict[Path, FileResult] = {}

        def report(results: list[FileResult], *, batch_id: str, started: float, interrupted: bool) -> None:
            if as_json:
                body = {"collection_id": collection, "batch_id": batch_id, "counts": counts(results)}
                emit_json({**body, "interrupted": interrupted, "files": [r.as_json() for r in results]})
                return
            tally = ", ".join(f"{n} {status}" for status, n in sorted(counts(results).items()))
            elapsed = format_seconds(time.monotonic() - started)
            console.print(summary_table(results, title=f"{collection}: {tally} in {elapsed}"))
            if interrupted:
                console.print(
                    f"interrupted: uploaded files go on; follow them with `ragstream jobs --batch {batch_id} --live`"
                )

        def changed(result: FileResult) -> None:
            seen[result.path] = result
            if view is not None:
                view.update(result)

        try:
            with view or IngestLines(console):
                _, results = await ingest(
                    api,
                    files,
                    collection=collection,
                    priority=priority.value,
                    wait=wait,
                    force=force,
                    parallel=parallel,
                    timeout_s=timeout,
                    on_change=changed,
                    batch_id=batch_id,
                )
        except asyncio.CancelledError:  # Ctrl-C: say what happened so far, and how to follow the rest
            report(list(seen.values()), batch_id=batch_id, started=started, interrupted=True)
            raise
        report(results, batch_id=batch_id, started=started, interrupted=False)
        return ingest_exit_code(results, wait=wait)

    run(ctx, work, as_json=as_json)
