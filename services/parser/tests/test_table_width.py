"""Tables wider than a spreadsheet can be are refused before they are turned into rows."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragstream_core.errors import UnreadableDocument
from ragstream_parser.tabular import MAX_COLUMNS, read_csv, read_parquet


def wide_csv(columns: int) -> bytes:
    return (",".join(f"c{i}" for i in range(columns)) + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode()


def test_a_csv_with_a_million_columns_is_refused_naming_the_limit() -> None:
    with pytest.raises(UnreadableDocument, match=f"row 1 has 1000000 columns; accepted: at most {MAX_COLUMNS}"):
        read_csv(wide_csv(1_000_000), file_name="wide.csv")


def test_a_csv_as_wide_as_the_limit_is_read() -> None:
    table, _ = read_csv(wide_csv(MAX_COLUMNS), file_name="widest.csv")

    assert len(table.columns) == MAX_COLUMNS
    assert len(table.rows) == 1


def test_a_later_row_wider_than_the_limit_is_refused_too() -> None:
    data = b"a,b\n1,2\n" + b",".join(b"x" for _ in range(MAX_COLUMNS + 1)) + b"\n"

    with pytest.raises(UnreadableDocument, match="row 3 has"):
        read_csv(data, file_name="ragged.csv")


def test_a_parquet_file_wider_than_the_limit_is_refused() -> None:
    table = pa.table({f"c{i}": [1] for i in range(MAX_COLUMNS + 1)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)

    with pytest.raises(UnreadableDocument, match=f"has {MAX_COLUMNS + 1} columns"):
        read_parquet(buffer.getvalue(), file_name="wide.parquet")
