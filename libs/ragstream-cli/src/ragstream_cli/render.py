"""How answers look: tables and lines for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich import box
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
    """The status as rich markup, coloured by what it means (its first word)."""
    style = STATUS_STYLE.get(status.split(" ", 1)[0])
    return f"[{style}]{escape(status)}[/]" if style else escape(status)


#: columns of ids, never wrapped (copied into the next command)
UNWRAPPED = frozenset({"document", "job", "seq", "#"})
#: columns kept at least this wide (up to their widest cell) when the terminal is narrow
KEEP_WIDTH = {"file": 18, "error": 16, "reason": 16}
#: columns left out, in this order, when a table would not fit the terminal (``--json`` has all)
DROPPABLE = ("sha256", "by", "label", "created", "updated", "at", "replayed", "deliveries", "eta", "size", "collection")
#: columns of free text, cut in tables (``--json`` has them whole)
CUT_AT = {"error": 100, "reason": 100, "detail": 120, "description": 60}


def cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    status_column: int = -1,
    width: int | None = None,
    droppable: Sequence[str] = DROPPABLE,
) -> Table:
    """A table of ``rows``; the cells are text (escaped), ids unwrapped, long texts cut, the status
    column coloured. Columns of ``droppable`` are left out, in its order, until the rest fits in
    ``width`` (default: the terminal's)."""
    texts = [[cut(format_value(cell), CUT_AT.get(name, 10_000)) for name, cell in zip(columns, row, strict=False)]
             for row in rows]  # fmt: skip
    widest = [max([len(column), *(len(r[i]) for r in texts if i < len(r))]) for i, column in enumerate(columns)]
    least = [
        w if c in UNWRAPPED else min(w, max(len(c), KEEP_WIDTH.get(c, 10)))
        for c, w in zip(columns, widest, strict=True)
    ]
    keep = list(range(len(columns)))
    room = width or Console().width
    for name in droppable:
        if sum(least[i] + 3 for i in keep) <= room:
            break
        keep = [i for i in keep if columns[i] != name]
    result = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for i in keep:
        whole = columns[i] in UNWRAPPED
        result.add_column(columns[i], overflow="fold", no_wrap=whole, min_width=least[i])
    for row, text in zip(rows, texts, strict=True):
        cells = {i: escape(text[i]) for i in keep if i < len(text)}
        if status_column in cells:
            cells[status_column] = styled_status(format_value(row[status_column]))
        result.add_row(*cells.values())
    return result


def short_time(iso: str | None) -> str:
    """``2026-12-03T18:42:23.123+00:00`` → ``2026-12-03 18:42:23``."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19]
