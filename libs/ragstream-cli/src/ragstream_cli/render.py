"""How answers look: tables and lines for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

#: statuses and their colour
STATUS_STYLE = {
    "indexed": "green",
    "deleted": "green",
    "unchanged": "cyan",
    "accepted": "cyan",
    "failed": "bold red",
    "refused": "bold red",
    "cancelled": "yellow",
    "superseded": "dim",
    "processing": "blue",
}


def out_console() -> Console:
    """Standard output; wide enough for tables when it is not a terminal."""
    return Console(highlight=False, soft_wrap=False)


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on standard output (no colours, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    """``data`` as one line of JSON (streams: one object per line)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def format_bytes(size: int | None) -> str:
    """``1536`` → ``1.5 KiB``; ``None`` → ``-``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_seconds(seconds: float | None) -> str:
    """``0.42`` → ``0.4s``, ``75`` → ``1m15s``, ``3725`` → ``1h02m``; ``None`` → ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_value(value: Any) -> str:
    """A cell: ``-`` for nothing, lists joined, the rest as text."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def styled_status(status: str) -> str:
    """The status as rich markup, coloured by what it means."""
    style = STATUS_STYLE.get(status)
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, status_column: int = -1
) -> Table:
    """A table of ``rows``; the cells are text (escaped), the status column coloured."""
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    for row in rows:
        cells = [escape(format_value(cell)) for cell in row]
        if 0 <= status_column < len(row):
            cells[status_column] = styled_status(format_value(row[status_column]))
        result.add_row(*cells)
    return result


def short_time(iso: str | None) -> str:
    """``2026-12-03T18:42:23.123+00:00`` → ``2026-12-03 18:42:23``."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]
