"""``python -m ragstream_devstack run``: the whole system on embedded defaults (``make run``).

``python -m ragstream_devstack servers -- COMMAND...``: NATS and PostgreSQL alone on the data
dir, COMMAND run with ``RAGSTREAM_NATS_URL``, ``RAGSTREAM_POSTGRES_URL`` and
``RAGSTREAM_DATA_DIR`` pointing at them (a restore: ``make restore``), then both stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ragstream_devstack.stack import Stack


def main() -> None:
    parser = argparse.ArgumentParser(prog="ragstream-devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start NATS, PostgreSQL and the five services; Ctrl-C stops")
    run.add_argument("--data-dir", type=Path, default=Path("data"))
    servers = sub.add_parser("servers", help="start NATS and PostgreSQL alone, run COMMAND against them, stop")
    servers.add_argument("--data-dir", type=Path, default=Path("data"))
    servers.add_argument("command_line", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    args = parser.parse_args()
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
            f"  upload     POST {stack.url('ingest-gateway')}/v1/collections/default/documents"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['ingest-gateway']}",
            f"  progress   GET  {stack.url('progress')}/v1/jobs/{{job_id}}"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['progress']}",
            f"  chat       POST {stack.url('chat')}/v1/collections/default/chat"
            f"   gRPC 127.0.0.1:{stack.grpc_ports['chat']}",
            f"  metrics    {stack.url('parser')}/metrics (parser)  {stack.url('embedder')}/metrics (embedder)",
            f"  NATS       {stack.nats.url}",
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
        assert stack.nats
        assert stack.postgres
        env = {"RAGSTREAM_NATS_URL": stack.nats.url, "RAGSTREAM_POSTGRES_URL": stack.postgres.url}
        env["RAGSTREAM_DATA_DIR"] = str(stack.data_dir)
        return subprocess.run(command, env={**stack.service_env(), **env}, check=False).returncode
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
