"""An upload is read from disk in chunks while httpx sends it, never whole."""

from __future__ import annotations

from pathlib import Path

import httpx

from ragstream_cli.api import segment
from ragstream_cli.ingest import _CountingReader


def test_a_file_is_sent_in_chunks_and_every_byte_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 4096 * 4)  # 4 MiB
    reads: list[int] = []

    with path.open("rb") as file:
        reader = _CountingReader(file, reads.append)
        request = httpx.Request(
            "POST", "http://gateway/v1/collections/c/documents", files={"file": ("big.bin", reader)}
        )
        sent = b"".join(request.stream)  # what httpx writes to the socket, chunk by chunk

    assert path.read_bytes() in sent
    assert sum(reads) == path.stat().st_size
    assert len(reads) > 16
    assert max(reads) <= 64 * 1024, "never more than one chunk in memory"


def test_ids_stay_one_path_segment() -> None:
    assert segment("a/b?c") == "a%2Fb%3Fc"
    assert segment("team-a.v2") == "team-a.v2"
