"""``make bench-upload``: the gateway's memory while it receives a 1 GiB upload.

Starts NATS, PostgreSQL and the ingest gateway alone (no parser: it would try to read the
file) in a fresh directory, with both size limits raised above the upload. After one small
warm-up upload it reads the gateway's resident memory, then streams a generated CSV of
``--size-mib`` MiB (default 1024) through REST (multipart, chunked, from a generator: this
process never holds the file either) and through gRPC client streaming, sampling the
gateway's ``VmRSS`` every 10 ms. Memory is flat when the peak during each upload stays near
the resident size before it. Prints a summary and writes ``bench/results/upload_rss.json``.

Run from the project root: ``.venv/bin/python bench/upload_rss.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx

from ragstream_core.proto.ragstream.v1 import ingest_pb2, ingest_pb2_grpc
from ragstream_devstack.servers import NatsServer, Postgres, free_port, python_env

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
BLOCK_ROWS = 20_000


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="size of each generated upload")
    parser.add_argument("--paths", default="rest,grpc", help="comma-separated: rest, grpc")
    parser.add_argument("--grpc-chunk-kib", type=int, default=64, help="bytes per gRPC UploadRequest")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "upload_rss.json")
    parser.add_argument("--keep-data", action="store_true", help="keep the data and logs directory")
    return parser.parse_args(argv)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident since start) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class Sampler:
    """The highest VmRSS of ``pid`` seen while running (every ``interval_s``)."""

    pid: int
    interval_s: float = 0.01
    peak_kib: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid)["VmRSS"])
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


def csv_blocks(size: int, seed: str) -> Callable[[], AsyncIterator[bytes]]:
    """A generator of ``size`` bytes of CSV, made of one header and a repeated block of rows."""
    head = f"id,name,quantity,note\n0,{seed},0,first row\n".encode()
    block = b"".join(f"{n},item-{n:06d},{n % 97},plain note for row {n}\n".encode() for n in range(1, BLOCK_ROWS))

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        left = size - len(head)
        while left > 0:
            piece = block[:left]
            left -= len(piece)
            yield piece

    return chunks


async def upload_rest(url: str, size: int, seed: str) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    chunks = csv_blocks(size, seed)

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="rss-{seed}.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        async for chunk in chunks():
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.post(
            f"{url}/v1/collections/bench-rss/documents",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    if response.status_code != 202:
        raise RuntimeError(f"REST upload answered {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


async def upload_grpc(port: int, size: int, seed: str, *, chunk_bytes: int) -> dict[str, Any]:
    chunks = csv_blocks(size, seed)

    async def requests() -> AsyncIterator[ingest_pb2.UploadRequest]:
        header = ingest_pb2.UploadHeader(collection_id="bench-rss", file_name=f"rss-{seed}.csv")
        yield ingest_pb2.UploadRequest(header=header)
        async for block in chunks():
            for start in range(0, len(block), chunk_bytes):
                yield ingest_pb2.UploadRequest(chunk=block[start : start + chunk_bytes])

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        response = await stub.Upload(requests())
    return {"size_bytes": response.size_bytes, "job_id": response.job_id, "media_type": response.media_type}


def wait_ready(url: str, process: subprocess.Popen[bytes], *, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with code {process.returncode} while starting")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the gateway was not ready after {within_s}s")


def run(args: argparse.Namespace) -> int:
    size = args.size_mib * MIB
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    data_dir = Path(tempfile.mkdtemp(prefix="ragstream-upload-rss-"))
    nats = NatsServer(data_dir / "nats", port=free_port()).start()
    postgres = Postgres(data_dir / "postgres").start()
    http_port, grpc_port = free_port(), free_port()
    env = python_env(
        {
            "RAGSTREAM_DATA_DIR": str(data_dir),
            "RAGSTREAM_NATS_URL": nats.url,
            "RAGSTREAM_POSTGRES_URL": postgres.url,
            "RAGSTREAM_LOG_LEVEL": "WARNING",
            "RAGSTREAM_AUTH_MODE": "open",  # one gateway on localhost, as `make run` starts it
            "RAGSTREAM_GATEWAY_HTTP_PORT": str(http_port),
            "RAGSTREAM_GATEWAY_GRPC_PORT": str(grpc_port),
            "RAGSTREAM_GATEWAY_MAX_UPLOAD_BYTES": str(size + MIB),
            "RAGSTREAM_GATEWAY_MAX_TABULAR_BYTES": str(size + MIB),
        }
    )
    url = f"http://127.0.0.1:{http_port}"
    log = open(data_dir / "gateway.log", "wb")  # noqa: SIM115 - closed below
    gateway: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        subprocess.run([sys.executable, "-m", "ragstream_gateway", "migrate"], env=env, check=True)
        gateway = subprocess.Popen(
            [sys.executable, "-m", "ragstream_gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        wait_ready(url, gateway)
        asyncio.run(upload_rest(url, 64 * 1024, "warm-up"))  # imports and pools are ready before measuring
        before = memory_kib(gateway.pid)
        say(f"gateway pid {gateway.pid}: VmRSS {before['VmRSS'] / 1024:.1f} MiB after warm-up")
        results: dict[str, Any] = {}
        for path in paths:
            seed = f"{path}-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            with Sampler(gateway.pid) as sampler:
                if path == "rest":
                    answer = asyncio.run(upload_rest(url, size, seed))
                elif path == "grpc":
                    answer = asyncio.run(upload_grpc(grpc_port, size, seed, chunk_bytes=args.grpc_chunk_kib * 1024))
                else:
                    raise ValueError(f"unknown path {path!r}: use rest or grpc")
            seconds = time.monotonic() - started
            if answer["size_bytes"] != size:
                raise RuntimeError(f"{path}: the gateway stored {answer['size_bytes']} bytes, not {size}")
            results[path] = {
                "seconds": round(seconds, 2),
                "mib_per_s": round(size / MIB / seconds, 1),
                "peak_rss_mib": round(sampler.peak_kib / 1024, 1),
                "growth_mib": round((sampler.peak_kib - before["VmRSS"]) / 1024, 1),
                "samples": sampler.samples,
            }
            say(
                f"{path:>4}: {args.size_mib} MiB in {seconds:.1f} s ({size / MIB / seconds:.0f} MiB/s);"
                f" peak VmRSS {sampler.peak_kib / 1024:.1f} MiB"
                f" (+{(sampler.peak_kib - before['VmRSS']) / 1024:.1f} MiB over before)"
            )
        after = memory_kib(gateway.pid)
        say(f"VmHWM (peak resident over the gateway's life): {after['VmHWM'] / 1024:.1f} MiB")
        output = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "upload_mib": args.size_mib,
            "cores": os.cpu_count(),
            "before": {"rss_mib": round(before["VmRSS"] / 1024, 1), "hwm_mib": round(before["VmHWM"] / 1024, 1)},
            "paths": results,
            "hwm_after_mib": round(after["VmHWM"] / 1024, 1),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(output, indent=2) + "\n")
        say(f"wrote {args.output}")
        ok = True
        return 0
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.terminate()
            gateway.wait(30)
        log.close()
        nats.stop()
        postgres.stop()
        if ok and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            say(f"data and logs kept in {data_dir}")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
