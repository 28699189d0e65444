"""Bad input gets a clear answer, and loses nothing: the system keeps working after it."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from ragstream_devstack.e2e import Client
from ragstream_devstack.testing import new_id


async def test_content_that_contradicts_the_extension_is_415_naming_accepted_types(
    client: Client, corpus: Path
) -> None:
    response = await client.upload(new_id("bad"), "report.pdf", (corpus / "docx" / "lorem_ipsum.docx").read_bytes())

    assert response.status_code == 415
    detail = response.json()["detail"]
    assert "the name says .pdf but the content is" in detail
    assert "accepted types: .csv, .doc, .docx" in detail


async def test_unsupported_format_is_415(client: Client) -> None:
    response = await client.upload(new_id("bad"), "letter.rtf", b"{\\rtf1\\ansi A letter about ducks.}")

    assert response.status_code == 415
    assert "extension '.rtf' is not supported" in response.json()["detail"]


async def test_binary_data_named_like_text_is_415(client: Client) -> None:
    response = await client.upload(new_id("bad"), "notes.md", os.urandom(4096))

    assert response.status_code == 415
    assert "notes.md" in response.json()["detail"]


async def test_empty_file_is_400(client: Client) -> None:
    response = await client.upload(new_id("bad"), "empty.md", b"")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("the uploaded file is empty")


async def test_file_over_the_size_limit_is_413(client: Client) -> None:
    response = await client.upload(new_id("bad"), "huge.md", b"a" * 2_500_000)  # limit is 2 MB here

    assert response.status_code == 413
    assert "exceeds the limit of 2000000 bytes" in response.json()["detail"]


async def test_document_docling_cannot_read_fails_its_job_with_the_reason(client: Client, corpus: Path) -> None:
    collection = new_id("poison")
    broken = await client.upload(collection, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n garbage")
    assert broken.status_code == 202

    (job,) = await client.wait_done([broken.json()["job_id"]])
    healthy = await client.upload(collection, "duck.md", (corpus / "md" / "duck.md").read_bytes())
    (after,) = await client.wait_done([healthy.json()["job_id"]])

    assert job["status"] == "failed"
    assert job["error"]["stage"] == "parsing"
    assert "broken.pdf" in job["error"]["reason"]
    assert job["attempts"] == 1, "an unreadable document is not retried"
    assert after["status"] == "indexed", "the parser keeps working after a poison document"


def zip_bomb(expanded_mib: int) -> bytes:
    """A DOCX-shaped ZIP whose document part inflates to ``expanded_mib`` MiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            for _ in range(expanded_mib):
                entry.write(b"\0" * (1024 * 1024))
    return buffer.getvalue()


async def test_a_zip_bomb_is_413_before_anything_inflates_it(client: Client) -> None:
    response = await client.upload(new_id("bad"), "bomb.docx", zip_bomb(200))

    assert response.status_code == 413
    assert "the ZIP container expands to" in response.json()["detail"]


async def test_a_plain_zip_named_docx_is_415(client: Client) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a Word document")

    response = await client.upload(new_id("bad"), "report.docx", buffer.getvalue())

    assert response.status_code == 415
    assert "the content is application/zip" in response.json()["detail"]


async def test_a_path_in_the_file_name_is_dropped(client: Client) -> None:
    response = await client.upload(new_id("bad"), "../../etc/passwd.md", b"# Passwd\n\nNot a secret at all.")

    assert response.status_code == 202
    assert response.json()["file_name"] == "passwd.md"


async def test_documents_that_cannot_be_read_fail_their_jobs_with_a_reason_and_nothing_else_is_disturbed(
    client: Client, corpus: Path
) -> None:
    collection = new_id("unreadable")
    pdf = (corpus / "pdf" / "multi_page.pdf").read_bytes()
    truncated = await client.upload(collection, "truncated.pdf", pdf[: len(pdf) // 2])
    no_columns = await client.upload(collection, "empty.csv", b",,,\n,,,\n")
    healthy = await client.upload(collection, "duck.md", (corpus / "md" / "duck.md").read_bytes())
    assert [r.status_code for r in (truncated, no_columns, healthy)] == [202, 202, 202]

    jobs = await client.wait_done([r.json()["job_id"] for r in (truncated, no_columns, healthy)])

    assert [(j["status"], (j["error"] or {}).get("stage")) for j in jobs] == [
        ("failed", "parsing"),
        ("failed", "parsing"),
        ("indexed", None),
    ]
    assert "truncated or damaged" in jobs[0]["error"]["reason"]
    assert "has no columns" in jobs[1]["error"]["reason"]
