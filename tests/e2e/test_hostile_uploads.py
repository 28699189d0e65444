"""Hostile uploads through the real gateway and parser: each is refused with a clear 4xx or
contained (a failed job with its reason), memory stays bounded, nothing leaves the object store.

The hostile files are made here, never committed. Every request names its tenant through
``identity_headers`` (the one place to switch to API keys).
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream_devstack.identity import identity_headers
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
#: large enough for a CSV of a million columns (4 MB); the other limits stay the defaults
UPLOAD_LIMIT = 32 * 1024 * 1024
FINAL = frozenset({"indexed", "failed", "deleted", "cancelled"})
#: a line every /etc/passwd has; it must never reach a parsed document
PASSWD_LINE = "root:x:0:0"
#: the parser's and gateway's peak resident memory may grow at most this much over their peak
#: after a benign document. Every bomb below inflates to 200 MiB - 30 GB if read naively (the PNG
#: declares 10^10 RGB pixels), and the million-column CSV took the parser from 0.5 to 3.2 GB before
#: the column limit; with the guards the parser grew 139 MiB (504 -> 643 MiB) and the gateway 5 MiB
#: (test-output/e2e/hostile-memory.json), so 512 MiB leaves room and still catches any of them.
RSS_GROWTH_BOUND = 512 * 1024 * 1024


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory: pytest.TempPathFactory, start_stack: Callable[..., Stack]) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory.mktemp("hostile"),
        OUTPUT / "logs-hostile",
        env={"RAGSTREAM_GATEWAY_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)},
    )
    yield running
    running.stop()


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - one server per test module, reset by the fixture

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"NETWORK-FETCH-HAPPENED"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 recording every request an external entity would make."""
    _Recorder.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/xxe", _Recorder.hits
    server.shutdown()


@pytest.fixture(scope="module")
def tenant() -> str:
    return new_id("hostile")


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=120) as client:
        yield client


async def upload(
    http: httpx.AsyncClient, stack: Stack, tenant: str, name: str, data: bytes, collection: str = "hostile"
) -> httpx.Response:
    return await http.post(
        f"{stack.url('ingest-gateway')}/v1/collections/{collection}/documents",
        files={"file": (name, data)},
        headers=identity_headers(tenant),
    )


async def raw_upload(http: httpx.AsyncClient, stack: Stack, tenant: str, name: str, text: str) -> httpx.Response:
    """An upload whose file name goes on the wire byte for byte (UTF-8), control characters and
    all: httpx would percent-encode them, a hostile client does not."""
    boundary = "hostile" + new_id("b").replace("-", "")
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + name.encode()
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + text.encode()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return await http.post(
        f"{stack.url('ingest-gateway')}/v1/collections/hostile/documents",
        content=body,
        headers={**identity_headers(tenant), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


async def finished(http: httpx.AsyncClient, stack: Stack, tenant: str, job_id: str, within_s: float = 240) -> Any:
    deadline = time.monotonic() + within_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await http.get(f"{stack.url('progress')}/v1/jobs/{job_id}", headers=identity_headers(tenant))
        if response.status_code == 200:
            job = response.json()
            if job["status"] in FINAL:
                return job
        await _pause()
    raise AssertionError(f"job {job_id} not finished within {within_s}s: {job}")


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.3)


def parsed_text(stack: Stack, tenant: str, document_id: str) -> str:
    """Everything the parser stored for the document (its chunks object), as text."""
    files = list((stack.data_dir / "objects" / "chunks" / tenant / document_id).glob("*.json"))
    assert files, f"no parsed chunks stored for {document_id}"
    return "".join(f.read_text(errors="replace") for f in files)


def peak_rss(stack: Stack, service: str) -> int:
    """The service process' peak resident memory (VmHWM) in bytes."""
    status = Path(f"/proc/{stack.processes[service].pid}/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def _patched(package: bytes, part: str, patch: Callable[[str], str], extra: dict[str, bytes] | None = None) -> bytes:
    """The OOXML package with one XML part rewritten (and extra parts added)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == part:
                data = patch(data.decode()).encode()
            target.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def _with_doctype(xml: str, root: str, url: str) -> str:
    doctype = (
        f'<!DOCTYPE {root} [<!ENTITY file SYSTEM "file:///etc/passwd">'
        f'<!ENTITY net SYSTEM "{url}">'
        f'<!ENTITY % remote SYSTEM "{url}-param"> %remote;]>'
    )
    head, sep, rest = xml.partition("?>")
    return f"{head}{sep}{doctype}{rest}" if sep else doctype + xml


def xxe_docx(marker: str, url: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(f"Visible {marker} FILE[ENTITY-FILE] NET[ENTITY-NET]")
    raw = io.BytesIO()
    document.save(raw)
    return _patched(
        raw.getvalue(),
        "word/document.xml",
        lambda xml: (
            _with_doctype(xml, "w:document", url).replace("ENTITY-FILE", "&file;").replace("ENTITY-NET", "&net;")
        ),
    )


def xxe_xlsx(marker: str, url: str) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["name", "value"])
    sheet.append([f"Visible {marker}", "FILE[ENTITY-FILE] NET[ENTITY-NET]"])
    raw = io.BytesIO()
    workbook.save(raw)
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as package:
        part = "xl/sharedStrings.xml" if "xl/sharedStrings.xml" in package.namelist() else "xl/worksheets/sheet1.xml"
        root = "sst" if part.endswith("sharedStrings.xml") else "worksheet"
    return _patched(
        raw.getvalue(),
        part,
        lambda xml: _with_doctype(xml, root, url).replace("ENTITY-FILE", "&file;").replace("ENTITY-NET", "&net;"),
    )


def inflating_zip(name: str, mib: int) -> bytes:
    """A ZIP with one entry of ``mib`` MiB of zeros, deflated (about 1 KB per MiB)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w", force_zip64=True) as entry,
    ):
        block = b"\0" * (1024 * 1024)
        for _ in range(mib):
            entry.write(block)
    return out.getvalue()


def xlsx_bomb() -> bytes:
    """An XLSX-shaped package whose sheet inflates to 200 MiB."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xxe_xlsx("bomb", "http://127.0.0.1:9/")), "r") as source:
        parts = {i.filename: source.read(i) for i in source.infolist()}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in parts.items():
            if name != "xl/worksheets/sheet1.xml":
                archive.writestr(name, data)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as entry:
            for _ in range(200):
                entry.write(b" " * (1024 * 1024))
    return out.getvalue()


def docx_with_nested_bomb(marker: str) -> bytes:
    """A real DOCX carrying a ZIP (an embedded object) that inflates to 512 MiB: the outer
    container's declared sizes are honest and small, so only a reader that opens the inner ZIP
    would inflate it."""
    import docx

    document = docx.Document()
    document.add_paragraph(f"Nested bomb {marker}")
    raw = io.BytesIO()
    document.save(raw)
    inner = inflating_zip("zeros.bin", 512)
    nested = inflating_zip("inner.zip", 0)  # a ZIP whose entry is itself the inflating ZIP
    with zipfile.ZipFile(io.BytesIO(nested), "a") as archive:
        archive.writestr("level2/inner.zip", inner)
    return _patched(raw.getvalue(), "word/document.xml", lambda xml: xml, {"word/embeddings/bomb.zip": nested})


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` RGB pixels, with a tiny image stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def docx_with_image(marker: str, png: bytes) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph(f"Image bomb {marker}")
    document.add_picture(io.BytesIO(png))
    raw = io.BytesIO()
    document.save(raw)
    return raw.getvalue()


def nested_html(depth: int, marker: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><title>Nested</title></head><body>"
        + "<div>" * depth
        + f"<p>Deep {marker}</p>"
        + "</div>" * depth
        + "</body></html>"
    ).encode()


def wide_csv(columns: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(columns))
    row = ",".join("1" for _ in range(columns))
    return f"{header}\n{row}\n".encode()


@pytest.fixture(scope="module")
def baseline_rss(hostile_stack: Stack, tenant: str) -> Iterator[dict[str, int]]:
    """Peak memory of the parser and the gateway after a benign DOCX went through (models loaded)."""
    import asyncio

    import docx

    async def run() -> None:
        document = docx.Document()
        document.add_paragraph("A benign document about ducks and rivers.")
        raw = io.BytesIO()
        document.save(raw)
        async with httpx.AsyncClient(timeout=120) as http:
            response = await upload(http, hostile_stack, tenant, "benign.docx", raw.getvalue())
            assert response.status_code == 202, response.text
            job = await finished(http, hostile_stack, tenant, response.json()["job_id"])
            assert job["status"] == "indexed", job

    asyncio.run(run())
    baseline = {service: peak_rss(hostile_stack, service) for service in ("parser", "ingest-gateway")}
    yield baseline
    # the numbers behind the bound, for the record (test-output/e2e/hostile-memory.json)
    peaks = {service: peak_rss(hostile_stack, service) for service in baseline}
    report = {s: {"baseline_mib": baseline[s] >> 20, "peak_mib": peaks[s] >> 20} for s in baseline}
    (OUTPUT / "hostile-memory.json").write_text(json.dumps(report, indent=2))


def assert_memory_bounded(stack: Stack, baseline: dict[str, int]) -> None:
    for service, before in baseline.items():
        now = peak_rss(stack, service)
        assert now - before < RSS_GROWTH_BOUND, (
            f"{service}'s peak RSS grew from {before >> 20} MiB to {now >> 20} MiB "
            f"(bound: +{RSS_GROWTH_BOUND >> 20} MiB)"
        )


async def assert_contained(
    http: httpx.AsyncClient, stack: Stack, tenant: str, response: httpx.Response
) -> dict[str, Any]:
    """Refused with a clear 4xx, or accepted and then indexed or failed with a reason."""
    if 400 <= response.status_code < 500:
        assert response.json().get("detail"), f"a refusal without a reason: {response.text}"
        return {"status": "refused", "code": response.status_code, "detail": response.json()["detail"]}
    assert response.status_code == 202, f"neither a 4xx refusal nor accepted: {response.status_code} {response.text}"
    job: dict[str, Any] = await finished(http, stack, tenant, response.json()["job_id"])
    assert job["status"] in {"indexed", "failed"}, job
    if job["status"] == "failed":
        assert job["error"]["reason"], f"a failed job without a reason: {job}"
    return job


async def test_xml_external_entities_in_docx_and_xlsx_are_never_resolved(
    hostile_stack: Stack,
    tenant: str,
    http: httpx.AsyncClient,
    listener: tuple[str, list[str]],
    baseline_rss: dict[str, int],
) -> None:
    url, hits = listener
    marker = new_id("xxe")
    for name, data in (("xxe.docx", xxe_docx(marker, url)), ("xxe.xlsx", xxe_xlsx(marker, url))):
        response = await upload(http, hostile_stack, tenant, name, data)

        assert response.status_code == 422, f"{name}: {response.status_code} {response.text}"
        assert "declares a DTD (<!DOCTYPE>)" in response.json()["detail"]
        assert "accepted: Office and OpenDocument files without DTDs" in response.json()["detail"]
        assert PASSWD_LINE not in response.text
    assert hits == [], f"an external entity was fetched: {hits}"
    assert_memory_bounded(hostile_stack, baseline_rss)


async def test_zip_bombs_are_refused_or_never_inflated(
    hostile_stack: Stack, tenant: str, http: httpx.AsyncClient, baseline_rss: dict[str, int]
) -> None:
    xlsx = await upload(http, hostile_stack, tenant, "bomb.xlsx", xlsx_bomb())
    assert xlsx.status_code == 413, xlsx.text
    assert "the ZIP container expands to" in xlsx.json()["detail"]

    marker = new_id("nested")
    nested = await upload(http, hostile_stack, tenant, "nested.docx", docx_with_nested_bomb(marker))
    job = await assert_contained(http, hostile_stack, tenant, nested)

    if job["status"] == "indexed":
        assert marker in parsed_text(hostile_stack, tenant, nested.json()["document_id"])
    plain = await upload(http, hostile_stack, tenant, "bomb.zip", inflating_zip("zeros.txt", 64))
    assert plain.status_code == 415, plain.text
    assert_memory_bounded(hostile_stack, baseline_rss)


async def test_an_image_declaring_ten_billion_pixels_is_refused_or_contained(
    hostile_stack: Stack, tenant: str, http: httpx.AsyncClient, baseline_rss: dict[str, int]
) -> None:
    png = png_declaring(100_000, 100_000)
    alone = await upload(http, hostile_stack, tenant, "bomb.png", png)
    assert alone.status_code == 415, alone.text
    assert "accepted" in alone.json()["detail"]

    marker = new_id("pixels")
    inside = await upload(http, hostile_stack, tenant, "picture.docx", docx_with_image(marker, png))
    job = await assert_contained(http, hostile_stack, tenant, inside)

    if job["status"] == "indexed":
        assert marker in parsed_text(hostile_stack, tenant, inside.json()["document_id"])
    assert_memory_bounded(hostile_stack, baseline_rss)


async def test_html_nested_a_hundred_thousand_deep_is_contained(
    hostile_stack: Stack, tenant: str, http: httpx.AsyncClient, baseline_rss: dict[str, int]
) -> None:
    marker = new_id("deep")
    response = await upload(http, hostile_stack, tenant, "deep.html", nested_html(100_000, marker))
    await assert_contained(http, hostile_stack, tenant, response)

    healthy = await upload(http, hostile_stack, tenant, "after-deep.md", f"# After\n\nStill {marker}.".encode())
    assert (await finished(http, hostile_stack, tenant, healthy.json()["job_id"]))["status"] == "indexed"
    assert_memory_bounded(hostile_stack, baseline_rss)


async def test_a_csv_with_a_million_columns_is_contained(
    hostile_stack: Stack, tenant: str, http: httpx.AsyncClient, baseline_rss: dict[str, int]
) -> None:
    response = await upload(http, hostile_stack, tenant, "wide.csv", wide_csv(1_000_000))
    await assert_contained(http, hostile_stack, tenant, response)

    healthy = await upload(http, hostile_stack, tenant, "after-wide.md", b"# After\n\nThe parser still works.")
    assert (await finished(http, hostile_stack, tenant, healthy.json()["job_id"]))["status"] == "indexed"
    assert_memory_bounded(hostile_stack, baseline_rss)


async def test_hostile_file_names_are_cleaned_or_refused_and_nothing_is_written_outside_the_store(
    hostile_stack: Stack, tenant: str, http: httpx.AsyncClient
) -> None:
    marker = new_id("name")
    names = [
        f"../../../../tmp/{marker}-dotdot.md",
        f"/tmp/{marker}-absolute.md",
        f"..\\..\\..\\{marker}-windows.md",
        f"C:\\Windows\\Temp\\{marker}-drive.md",
        f"{marker}-bell\x07-escape\x1b[31m-del\x7f.md",
        f"{marker}-nul\x00.md",
        f"{marker}-newline\r\nX-Injected: yes.md",
        f"{marker}-" + "l" * 5000 + ".md",
        "../",
        "\x00\x01\x02",
    ]
    outcomes = []
    for index, name in enumerate(names):
        response = await raw_upload(http, hostile_stack, tenant, name, f"# Name {index}\n\nBody {marker} {index}.")
        outcomes.append((name, response))

    for name, response in outcomes:
        if response.status_code == 202:
            stored = response.json()["file_name"]
            assert "/" not in stored, (name, stored)
            assert "\\" not in stored, (name, stored)
            assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in stored), (name, stored)
            assert len(stored.encode()) <= 255, (name, len(stored))
            if "\n" not in name:  # a line break ends the header line: the rest is another header
                assert stored.endswith(".md"), f"the extension was lost: {name!r} -> {stored!r}"
            job = await finished(http, hostile_stack, tenant, response.json()["job_id"])
            assert job["status"] == "indexed", (name, job)
        else:
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            assert response.json()["detail"], (name, response.text)
    assert [r.status_code for _, r in outcomes[-2:]] == [400, 400], "a name with nothing usable is refused"
    assert all("no usable file name" in r.json()["detail"] for _, r in outcomes[-2:])

    # where an absolute or climbing name would land, and everywhere around the stack's data
    leaked = [f"/tmp/{f}" for f in os.listdir("/tmp") if marker in f]
    leaked += [
        os.path.join(d, f) for d, _, files in os.walk(hostile_stack.data_dir.parent) for f in files if marker in f
    ]
    assert leaked == [], f"files written outside the object store's keys: {leaked}"
