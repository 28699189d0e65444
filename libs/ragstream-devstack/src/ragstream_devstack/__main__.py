"""``python -m ragstream_devstack run``: the whole system on embedded defaults (``make run``)."""

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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
