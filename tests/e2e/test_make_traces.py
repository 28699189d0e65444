"""``make traces`` on the running system: without an OTLP endpoint the services append their spans
to ``<data dir>/traces.jsonl`` and ``python -m ragstream_devstack traces`` prints the last job's
trace as a tree, with a line for each hop of every service."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from ragstream_devstack.e2e import Client
from ragstream_devstack.stack import Stack
from ragstream_devstack.testing import new_id

#: the hops the printed tree must show, from the upload to the index update
HOPS = (
    "publish ragstream.events.doc.released",
    "process ragstream.events.doc.released",
    "docling convert",
    "process ragstream.events.doc.parsed",
    "embed batch",
    "publish ragstream.events.index.updated",
)
NOTE = b"# Owls\n\nBarn owls hunt at night by sound alone, finding mice under the snow.\n"


def print_trace(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragstream_devstack", "traces", "--data-dir", str(stack.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_make_traces_prints_the_last_jobs_hops_through_every_service(client: Client, stack: Stack) -> None:
    upload = await client.upload(new_id("tree"), "owls.md", NOTE)
    [job] = await client.wait_done([upload.json()["job_id"]])
    assert job["status"] == "indexed", job

    # spans reach the file within the services' batch delay (1 s under make run): poll until every service's are in
    deadline = time.monotonic() + 30
    output = ""
    while time.monotonic() < deadline:
        result = print_trace(stack, "--job", job["job_id"])
        output = result.stdout
        # a service's batch of spans may reach the file after the next hop's service wrote its own
        if all(hop in output for hop in HOPS) and all(
            f" {service} " in output for service in ("ingest-gateway", "parser", "embedder", "progress", "chat")
        ):
            break
        await asyncio.sleep(0.5)

    lines = output.splitlines()
    assert lines[0] == f"trace {job['trace_id']}", output
    assert lines[-1].endswith("spans hidden: postgresql)"), "SQL spans are hidden unless --all"
    lines = lines[:-1]
    services = {line.split("ms", 2)[2].split()[0] for line in lines[2:]}
    assert {"ingest-gateway", "parser", "embedder", "progress", "chat"} <= services, output
    names = [line.split("ms", 2)[2].split(maxsplit=1)[1].lstrip("│├└─ ") for line in lines[2:]]
    assert names[0] == "POST /v1/collections/{collection_id}/documents"
    for hop in HOPS:
        assert hop in names, output
    assert names.index("process ragstream.events.doc.released") < names.index("process ragstream.events.doc.parsed")
    assert print_trace(stack).stdout.startswith("trace "), "without --job: the latest upload's trace"
    assert " postgresql INSERT" in print_trace(stack, "--job", job["job_id"], "--all").stdout


def test_make_traces_without_spans_says_how_to_get_them(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ragstream_devstack", "traces", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "make run" in result.stderr
