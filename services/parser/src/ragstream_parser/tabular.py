"""Tables (CSV, Parquet, spreadsheet sheets) as chunks of rows that carry their column names.

Each row reads ``"Region: North; Product: Widget; Sales: 120"``; consecutive rows share a chunk
up to the model's token limit, counted on what is embedded (the heading path and the embedded
columns). The chunk's ``text`` always shows every column of its rows, so an answer cites the whole
row; ``embed_columns`` (empty: all) and ``context_columns`` (never embedded, even when also named
in ``embed_columns``) only narrow what the model reads. Column names match case-insensitively.
Malformed rows and unknown column names are warnings, never failures.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.docling_parser import Chunk, ParseOptions
from ragstream_parser.packing import TokenCounter, Unit, pack, split_to_fit
from ragstream_parser.progress import Progress

#: delimiters a CSV may use, in the order preferred on a tie
DELIMITERS = (",", ";", "\t", "|")
#: per-row warnings kept for one document; the rest are counted in one summary line
MAX_ROW_WARNINGS = 20
#: rows between two progress reports
_PROGRESS_ROWS = 100
#: the widest table read: a spreadsheet's own limit (Excel: 16,384 columns). Every row becomes one
#: line naming each column, so a CSV of a million one-byte columns (4 MB) would become a single
#: "row" of millions of tokens, which took the parser past 3 GB before this limit.
MAX_COLUMNS = 16_384
_SNIFF_LINES = 50


@dataclass
class Table:
    """Rows under one header; a row may have more cells than the header (``column_N`` names them)."""

    heading_path: list[str]
    columns: list[str]
    rows: list[list[str]]
    pages: list[int] = field(default_factory=list)

    def name_of(self, position: int) -> str:
        return self.columns[position] if position < len(self.columns) else f"column_{position + 1}"

    @property
    def names(self) -> list[str]:
        """The header and the names of extra cells of any row, in position order."""
        width = max([len(self.columns), *(len(row) for row in self.rows)])
        return [self.name_of(position) for position in range(width)]


def read_csv(data: bytes, *, file_name: str) -> tuple[Table, list[str]]:
    """The table of a CSV and the problems worked around in it.

    The delimiter (comma, semicolon, tab or pipe) is the one giving the most rows of one width.
    Rows with more cells than the header keep them as ``column_N``; shorter rows leave the rest
    empty; both are warned about. Raises ``UnreadableDocument`` when there is no header row.
    """
    text, warnings = _decode(data, file_name=file_name)
    delimiter = sniff_delimiter(text)
    try:
        records = list(_bounded(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), file_name=file_name))
    except csv.Error as exc:
        raise UnreadableDocument(f"{file_name!r} is not a readable CSV: {exc}") from exc
    numbered = [(number, [cell.strip() for cell in record]) for number, record in enumerate(records, start=1)]
    numbered = [(number, cells) for number, cells in numbered if any(cells)]
    if not numbered:
        raise UnreadableDocument(f"{file_name!r} has no columns: it holds no header row (no values at all)")
    header_number, header = numbered[0]
    columns = _unique_names(header)
    rows: list[list[str]] = []
    row_warnings: list[str] = []
    for number, cells in numbered[1:]:
        if len(cells) > len(columns):
            extra = ", ".join(f"column_{p + 1}" for p in range(len(columns), len(cells)))
            row_warnings.append(
                f"row {number}: {len(cells)} cells, header has {len(columns)}; extra cells kept as {extra}"
            )
        elif len(cells) < len(columns):
            row_warnings.append(
                f"row {number}: {len(cells)} cells, header has {len(columns)}; missing cells left empty"
            )
        rows.append(cells)
    if header_number > 1:
        warnings.append(f"the first {header_number - 1} rows are empty; row {header_number} is the header")
    warnings.extend(_capped(row_warnings, what="rows have a different number of cells than the header"))
    return Table(heading_path=[file_name], columns=columns, rows=rows, pages=[1]), warnings


def _bounded(records: Iterator[list[str]], *, file_name: str) -> Iterator[list[str]]:
    """The records, refusing (``UnreadableDocument``) at the first wider than ``MAX_COLUMNS``."""
    for number, record in enumerate(records, start=1):
        if len(record) > MAX_COLUMNS:
            raise UnreadableDocument(
                f"{file_name!r} row {number} has {len(record)} columns; accepted: at most {MAX_COLUMNS} "
                "(a spreadsheet's limit)"
            )
        yield record


def check_width(columns: int, *, file_name: str) -> None:
    """Raise ``UnreadableDocument`` if a table has more than ``MAX_COLUMNS`` columns."""
    if columns > MAX_COLUMNS:
        raise UnreadableDocument(
            f"{file_name!r} has {columns} columns; accepted: at most {MAX_COLUMNS} (a spreadsheet's limit)"
        )


def sniff_delimiter(text: str) -> str:
    """The delimiter giving the most non-trivial rows of the most common width (comma on a tie)."""
    sample = text.splitlines()[:_SNIFF_LINES]
    best, best_score = DELIMITERS[0], 0
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(sample, delimiter=delimiter) if any(c.strip() for c in row)]
        except csv.Error:
            continue
        common = Counter(w for w in widths if w > 1).most_common(1)
        score = common[0][1] if common else 0
        if score > best_score:
            best, best_score = delimiter, score
    return best


def read_parquet(data: bytes, *, file_name: str) -> Table:
    """The rows of a Parquet file, every value as text; raises ``UnreadableDocument`` if pyarrow cannot read it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        columns = [str(name) for name in parquet.schema_arrow.names]
        check_width(len(columns), file_name=file_name)
        rows = [
            [cell_text(record.get(name)) for name in columns]
            for batch in parquet.iter_batches()
            for record in batch.to_pylist()
        ]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableDocument(f"{file_name!r} is not a readable Parquet file: {exc}") from exc
    if not columns:
        raise UnreadableDocument(f"{file_name!r} has no columns")
    return Table(heading_path=[file_name], columns=_unique_names(columns), rows=rows, pages=[1])


def workbook_tables(document: Any) -> list[Table]:
    """The tables Docling found in a spreadsheet, under their sheet's name.

    A one-row table is a title: it joins the heading path of the next table of its sheet (or
    becomes a table of its own when no table follows it).
    """
    from docling_core.types.doc import GroupItem, GroupLabel, TableItem

    tables: list[Table] = []
    sheet = ""
    titles: list[Table] = []

    def flush_titles() -> None:
        tables.extend(titles)
        titles.clear()

    for item, _level in document.iterate_items(with_groups=True):
        if isinstance(item, GroupItem) and item.label == GroupLabel.SHEET:
            flush_titles()
            sheet = str(item.name)
            continue
        if not isinstance(item, TableItem) or not item.data.grid:
            continue
        grid = [[str(cell.text).strip() for cell in row] for row in item.data.grid]
        pages = sorted({p.page_no for p in item.prov})
        heading = [sheet] if sheet else []
        header_rows = max(1, *(cell.row_span for cell in item.data.grid[0]))
        if len(grid) <= header_rows:
            title = " ".join(dict.fromkeys(c for row in grid for c in row if c))
            if title:
                titles.append(Table(heading_path=heading, columns=["Title"], rows=[[title]], pages=pages))
            continue
        heading += [t.rows[0][0] for t in titles]
        titles.clear()
        columns = [
            " / ".join(dict.fromkeys(c for c in column if c)) for column in zip(*grid[:header_rows], strict=True)
        ]
        tables.append(Table(heading_path=heading, columns=_unique_names(columns), rows=grid[header_rows:], pages=pages))
    flush_titles()
    return tables


def table_chunks(
    tables: Sequence[Table],
    *,
    options: ParseOptions,
    count_tokens: TokenCounter,
    max_tokens: int,
    file_name: str,
    progress: Progress | None = None,
) -> tuple[list[Chunk], list[str]]:
    """Chunks of the rows of ``tables`` (in order) and warnings about the column preferences.

    Guarantee: every chunk's ``embed_text`` is at most ``max_tokens`` tokens; every row with a
    value in an embedded column is in exactly one chunk (a row too long for one chunk is split
    across consecutive ones); rows with values only in other columns ride along with their
    neighbours, or are dropped with a warning when a whole chunk of them has nothing to embed.
    ``progress`` is told the rows read so far (of all tables), every ``_PROGRESS_ROWS`` rows.
    """
    warnings = _preference_warnings(tables, options=options, file_name=file_name)
    chunks: list[Chunk] = []
    unembedded = 0
    rows_total = sum(len(table.rows) for table in tables)
    rows_before = 0
    for table in tables:
        embedded, fallback = _embedded_positions(table, options=options)
        if fallback:
            warnings.append(
                f"{' / '.join(table.heading_path) or file_name}: none of the embed_columns "
                f"({', '.join(options.embed_columns)}) is a column here; every column is embedded"
            )
        prefix = "\n".join(table.heading_path)
        prefix_tokens = count_tokens(prefix) if prefix else 0
        if prefix_tokens > max_tokens // 4:  # a heading that long would crowd out the rows
            prefix, prefix_tokens = "", 0
        budget = max_tokens - prefix_tokens
        rows = table.rows if progress is None else _counted(table.rows, rows_before, rows_total, progress)
        rows_before += len(table.rows)
        units = (
            unit
            for row in rows
            for unit in _row_units(table, row, embedded=embedded, budget=budget, count_tokens=count_tokens)
        )
        for group in pack(units, budget=budget):
            if not any(unit.embed for unit in group):
                unembedded += len(group)
                continue
            chunks.extend(_chunks_of(group, table=table, prefix=prefix, count_tokens=count_tokens, limit=max_tokens))
    if unembedded:
        warnings.append(f"{unembedded} rows have no value in the embedded columns and are not indexed")
    for index, chunk in enumerate(chunks):
        chunk.index = index
    return chunks, warnings


def _counted(rows: list[list[str]], before: int, total: int, progress: Progress) -> Iterator[list[str]]:
    """``rows``, telling ``progress`` every ``_PROGRESS_ROWS`` rows (and at the end) how many were read."""
    for number, row in enumerate(rows, start=before + 1):
        yield row
        if number % _PROGRESS_ROWS == 0 or number == total:
            progress(number, total, "rows")


def cell_text(value: object) -> str:
    """A cell value as users read it: no ``None``, ISO dates, JSON for nested values."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _decode(data: bytes, *, file_name: str) -> tuple[str, list[str]]:
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), [f"{file_name} is not UTF-8; read as Windows-1252"]
    except UnicodeDecodeError:
        return data.decode("latin-1"), [f"{file_name} is not UTF-8; read as Latin-1"]


def _unique_names(header: Iterable[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(header):
        name = raw.strip() or f"column_{position + 1}"
        candidate, count = name, 1
        while candidate.casefold() in seen:
            count += 1
            candidate = f"{name}_{count}"
        seen.add(candidate.casefold())
        names.append(candidate)
    return names


def _capped(warnings: list[str], *, what: str) -> list[str]:
    if len(warnings) <= MAX_ROW_WARNINGS:
        return warnings
    return [*warnings[:MAX_ROW_WARNINGS], f"... and {len(warnings) - MAX_ROW_WARNINGS} more {what}"]


def _preference_warnings(tables: Sequence[Table], *, options: ParseOptions, file_name: str) -> list[str]:
    known = {name.casefold() for table in tables for name in table.names}
    shown = ", ".join(dict.fromkeys(name for table in tables for name in table.names))
    return [
        f"{preference} {name!r} is not a column of {file_name} (columns: {shown}); ignored"
        for preference, names in (
            ("embed_columns", options.embed_columns),
            ("context_columns", options.context_columns),
        )
        for name in names
        if name.strip().casefold() not in known
    ]


def _embedded_positions(table: Table, *, options: ParseOptions) -> tuple[set[int], bool]:
    """Positions of the columns the model reads, and whether ``embed_columns`` had to fall back to all."""
    names = [name.casefold() for name in table.names]
    context = {name.strip().casefold() for name in options.context_columns}
    wanted = {name.strip().casefold() for name in options.embed_columns}
    chosen = {p for p, name in enumerate(names) if name in wanted}
    fallback = bool(wanted) and not chosen
    if not chosen:
        chosen = set(range(len(names)))
    return {p for p in chosen if names[p] not in context}, fallback


def _row_units(
    table: Table, row: list[str], *, embedded: set[int], budget: int, count_tokens: TokenCounter
) -> Iterator[Unit]:
    pairs = [(p, f"{table.name_of(p)}: {value}") for p, value in enumerate(row) if value]
    if not pairs:
        return
    text = "; ".join(pair for _, pair in pairs)
    embed = "; ".join(pair for p, pair in pairs if p in embedded)
    tokens = count_tokens(embed) if embed else 0
    if tokens <= budget:
        yield Unit(text=text, embed=embed, tokens=tokens)
        return
    # a row wider than a chunk: its embedded cells go out in pieces, the rest with the last one
    pieces = split_to_fit(embed, budget=budget, count_tokens=count_tokens)
    shown_only = "; ".join(pair for p, pair in pairs if p not in embedded)
    for number, piece in enumerate(pieces, start=1):
        shown = f"{piece}; {shown_only}" if number == len(pieces) and shown_only else piece
        yield Unit(text=shown, embed=piece, tokens=count_tokens(piece))


def _chunks_of(group: list[Unit], *, table: Table, prefix: str, count_tokens: TokenCounter, limit: int) -> list[Chunk]:
    embedded = "\n".join(unit.embed for unit in group if unit.embed)
    embed_text = f"{prefix}\n{embedded}" if prefix else embedded
    tokens = count_tokens(embed_text)
    if tokens > limit and len(group) > 1:  # never expected (WordPiece adds up), but never truncate either
        half = len(group) // 2
        return [
            *_chunks_of(group[:half], table=table, prefix=prefix, count_tokens=count_tokens, limit=limit),
            *_chunks_of(group[half:], table=table, prefix=prefix, count_tokens=count_tokens, limit=limit),
        ]
    return [
        Chunk(
            index=0,
            text="\n".join(unit.text for unit in group if unit.text),
            embed_text=embed_text,
            tokens=tokens,
            heading_path=list(table.heading_path),
            pages=list(table.pages),
        )
    ]
