"""``python -m ragstream_devstack run``: the whole system on embedded defaults (``make run``).

``python -m ragstream_devstack traces [--job ID] [--all]``: the last job's trace from
``data/traces.jsonl`` as a tree (``make traces``).

``python -m ragstream_devstack servers -- COMMAND...``: NATS and PostgreSQL alone on the data
dir, COMMAND run with ``RAGSTREAM_NATS_URL``, ``RAGSTREAM_POSTGRES_URL`` and
``RAGSTREAM_DATA_DIR`` pointing at them (a restore: ``make restore``), then both stopped.

``python -m ragstream_devstack nats-url``: the NATS URL of ``make run``'s operator user (every
right), for tools beside it (``make backup``, ``make rebuild-progress``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from ragstream_devstack.servers import local_nats_url
from ragstream_devstack.stack import NATS_USERS_FILE, Stack, stored_nats_passwords

#: spans `make traces` leaves out unless ALL=1: one per SQL statement, and ASGI's message spans
BRIEF_HIDES = ("postgresql ",)


def print_trace(path: Path, *, job_id: str = "", everything: bool = False) -> int:
    """Print the trace of the latest job (or ``job_id``) from ``path``; 1 with a reason if none."""
    from ragstream_core.trace_file import last_job_trace, read_spans, render_tree

    if not path.exists():
        sys.stderr.write(
            f"no spans at {path}: start the system with `make run` (without OTEL_EXPORTER_OTLP_ENDPOINT) "
            "and upload a document\n"
        )
        return 1
    spans = last_job_trace(read_spans(path), job_id=job_id)
    if not spans:
        sys.stderr.write(f"no job{' ' + job_id if job_id else ''} in {path}: upload a document first\n")
        return 1
    brief = [s for s in spans if not s["name"].endswith((" http receive", " http send"))]
    sys.stdout.write(render_tree(spans if everything else brief, hide=() if everything else BRIEF_HIDES) + "\n")
    return 0


def operator_url(data_dir: Path) -> str:
    """``RAGSTREAM_NATS_URL`` if set, else the operator's URL of the NATS ``make run`` started on ``data_dir``."""
    from ragstream_core.nats_users import OPERATOR

    if os.environ.get("RAGSTREAM_NATS_URL"):
        return os.environ["RAGSTREAM_NATS_URL"]
    port = int(os.environ.get("RAGSTREAM_NATS_PORT", 4222))
    password = stored_nats_passwords(data_dir).get(OPERATOR, "")
    return local_nats_url(port, user=OPERATOR if password else "", password=password)


def main() -> None:
    parser = argparse.ArgumentParser(prog="ragstream-devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start NATS, PostgreSQL and the five services; Ctrl-C stops")
    run.add_argument("--data-dir", type=Path, default=Path("data"))
    traces = sub.add_parser("traces", help="print the last job's trace (or --job's) as a tree")
    traces.add_argument("--data-dir", type=Path, default=Path("data"))
    traces.add_argument("--job", default="", help="a job id; default: the latest upload")
    traces.add_argument("--all", action="store_true", help="also PostgreSQL statements and ASGI send/receive")
    servers = sub.add_parser("servers", help="start NATS and PostgreSQL alone, run COMMAND against them, stop")
    servers.add_argument("--data-dir", type=Path, default=Path("data"))
    servers.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    url = sub.add_parser("nats-url", help="the NATS URL of make run's operator user (every right)")
    url.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    if args.command == "nats-url":
        sys.stdout.write(operator_url(args.data_dir) + "\n")
        return
    if args.command == "traces":
        sys.exit(print_trace(args.data_dir / "traces.jsonl", job_id=args.job, everything=args.all))
    if args.command == "servers":
        command = args.command_line[1:] if args.command_line[:1] == ["--"] else args.command_line
        sys.exit(run_beside_servers(args.data_dir, command or ["true"]))

    stack = Stack(data_dir=args.data_dir, fixed_ports=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    try:
        stack.start()
        assert stack.nats
        assert stack.postgres
        lines = [
            "",
            "ragstream is running (Ctrl-C stops everything; data stays in " + str(stack.data_dir) + ")",
            f"  web page   {stack.url('ingest-gateway')}/ui/",
            f"  upload     POST {stack.url('ingest-gateway')}/v1/collections/default/documents"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['ingest-gateway']}",
            f"  progress   GET  {stack.url('progress')}/v1/jobs/{{job_id}}"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['progress']}",
            f"  chat       POST {stack.url('chat')}/v1/collections/default/chat"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['chat']}",
            f"  metrics    {stack.url('parser')}/metrics (parser)  {stack.url('embedder')}/metrics (embedder)",
            "  traces     "
            + (
                f"OTLP/HTTP to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}"
                if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                else f"{stack.traces_file}; `make traces` prints the last job's"
            ),
            f"  NATS       {stack.nats.url}" + f" (users: {stack.data_dir / NATS_USERS_FILE})",
            f"  PostgreSQL {stack.postgres.url}",
            "",
        ]
        sys.stderr.write("\n".join(lines) + "\n")
        while not stopped.wait(1.0):
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    sys.stderr.write(f"service {name} exited ({process.returncode}); restarting it\n")
                    stack.start_service(name)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.write("stopping ragstream...\n")
        stack.stop()


def run_beside_servers(data_dir: Path, command: list[str]) -> int:
    """Start NATS and PostgreSQL on ``data_dir`` (the fixed ports of ``run``), run ``command`` with
    the environment pointing at them, stop both; the command's exit code."""
    import subprocess

    stack = Stack(data_dir=data_dir, fixed_ports=True)
    try:
        stack.start_servers()
        assert stack.postgres
        env = {"RAGSTREAM_NATS_URL": stack.bus_url, "RAGSTREAM_POSTGRES_URL": stack.postgres.url}
        env["RAGSTREAM_DATA_DIR"] = str(stack.data_dir)
        return subprocess.run(command, env={**stack.service_env(), **env}, check=False).returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
