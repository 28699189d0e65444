"""The five services as separate processes over one NATS and one PostgreSQL.

Used by ``make run`` (``python -m ragstream_devstack run``), the end-to-end tests and the
benchmark. Each service is started with ``python -m <module>``; its ports come from the
environment, so the tests can run a stack beside a running ``make run``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from ragstream_core.nats_users import OPERATOR, SERVICE_USERS, nats_config
from ragstream_core.secrets import key_file
from ragstream_devstack.servers import NatsServer, Postgres, free_port, python_env

#: the passwords of the stack's NATS users, under its data directory (mode 0600)
NATS_USERS_FILE = Path("nats") / "users.json"


def stored_nats_passwords(data_dir: Path) -> dict[str, str]:
    """The NATS users' passwords a stack on ``data_dir`` generated (empty: none yet)."""
    stored = data_dir / NATS_USERS_FILE
    return dict(json.loads(stored.read_text())) if stored.exists() else {}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port_env: str
    default_port: int
    grpc_env: str = ""
    default_grpc_port: int = 0
    migrates: bool = False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "ingest-gateway",
        "ragstream_gateway",
        "RAGSTREAM_GATEWAY_HTTP_PORT",
        8080,
        "RAGSTREAM_GATEWAY_GRPC_PORT",
        50051,
        migrates=True,
    ),
    ServiceSpec(
        "progress",
        "ragstream_progress",
        "RAGSTREAM_PROGRESS_HTTP_PORT",
        8081,
        "RAGSTREAM_PROGRESS_GRPC_PORT",
        50052,
        migrates=True,
    ),
    ServiceSpec(
        "chat", "ragstream_chat", "RAGSTREAM_CHAT_HTTP_PORT", 8082, "RAGSTREAM_CHAT_GRPC_PORT", 50053, migrates=True
    ),
    ServiceSpec("parser", "ragstream_parser", "RAGSTREAM_PARSER_METRICS_PORT", 9101),
    ServiceSpec("embedder", "ragstream_embedder", "RAGSTREAM_EMBEDDER_METRICS_PORT", 9102),
)


#: how often ``start_services`` chooses new random ports when one was taken meanwhile
PORT_ATTEMPTS = 3
#: what uvicorn and gRPC log when a port is in use
BIND_FAILURES = ("address already in use", "Failed to bind to address")


class PortTaken(RuntimeError):
    """A service could not bind the port chosen for it: something took it in the meantime."""


@dataclass
class Stack:
    """NATS, PostgreSQL and the services, all under ``data_dir``.

    ``fixed_ports`` uses the documented defaults (``make run``); otherwise every port is free
    and random (tests). ``log_dir`` receives one log file per service; ``None`` lets the
    services write to this terminal.
    """

    data_dir: Path
    fixed_ports: bool = False
    log_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: origins of pages besides the gateway's own web page that may call the APIs (widget hosts)
    browser_origins: list[str] = field(default_factory=list)
    #: an external NATS (e.g. a ``NatsCluster``'s URL) instead of the nats-server the stack starts
    nats_url: str = ""
    #: the users of the stack's own NATS: one per service with its role's subjects
    #: (``ragstream_core.nats_users``) and the operator with every right (``bus_url``), generated
    #: into ``NATS_USERS_FILE``; empty with an external NATS
    nats_passwords: dict[str, str] = field(default_factory=dict)
    nats: NatsServer | None = None
    postgres: Postgres | None = None
    ports: dict[str, int] = field(default_factory=dict)
    grpc_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> Stack:
        """Start everything and wait until each service is ready; if anything fails to start,
        stop what was started (no server outlives a failed start) and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Stack:
        self.start_servers()
        return self.start_services()

    def start_servers(self) -> Stack:
        """NATS and PostgreSQL only, and the services' ports chosen (a restore runs now)."""
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        nats_port = int(os.environ.get("RAGSTREAM_NATS_PORT", 4222)) if self.fixed_ports else free_port()
        if not self.nats_url:
            self.nats = NatsServer(self.data_dir / "nats", port=nats_port, config=self._nats_users_config()).start()
        self.postgres = Postgres(self.data_dir / "postgres").start()
        self._choose_ports()
        return self

    def _nats_users_config(self) -> Path:
        """The users' passwords (kept in ``nats/users.json``, mode 0600, so a restart keeps them) and
        the server's configuration naming them."""
        stored = self.data_dir / NATS_USERS_FILE
        stored.parent.mkdir(parents=True, exist_ok=True)
        passwords = stored_nats_passwords(self.data_dir)
        for user in (OPERATOR, *SERVICE_USERS):
            passwords.setdefault(user, secrets.token_urlsafe(24))
        stored.touch(mode=0o600)
        stored.write_text(json.dumps(passwords, indent=1))
        self.nats_passwords = passwords
        config = stored.parent / "users.conf"
        config.write_text(nats_config(passwords))
        config.chmod(0o600)
        return config

    def _choose_ports(self) -> None:
        for spec in SERVICES:
            if self.fixed_ports:
                self.ports[spec.name] = int(os.environ.get(spec.port_env, spec.default_port))
                if spec.grpc_env:
                    self.grpc_ports[spec.name] = int(os.environ.get(spec.grpc_env, spec.default_grpc_port))
            else:
                self.ports[spec.name] = free_port()
                if spec.grpc_env:
                    self.grpc_ports[spec.name] = free_port()

    def start_services(self) -> Stack:
        """Migrate, start the five services on the running servers and wait until each is ready."""
        for spec in SERVICES:
            if spec.migrates:
                subprocess.run(
                    [sys.executable, "-m", spec.module, "migrate"], env=self.service_env(spec.name), check=True
                )
        attempt = 1
        while True:
            for spec in SERVICES:
                self.start_service(spec.name, wait=False)
            try:
                for spec in SERVICES:
                    self.wait_healthy(spec.name)
                return self
            except PortTaken:
                # A free port was taken between choosing it and the service binding it (by any
                # process's outgoing connection: they draw from the same range). Random ports
                # only: choose again; each service knows the others' ports, so all restart.
                if self.fixed_ports or attempt == PORT_ATTEMPTS:
                    raise
                for spec in reversed(SERVICES):
                    self.stop_service(spec.name)
                self._choose_ports()
                attempt += 1

    def service_env(self, name: str | None = None) -> dict[str, str]:
        """The environment of service ``name`` (its own NATS user); None: the operator's."""
        assert self.postgres
        extra = {
            "RAGSTREAM_DATA_DIR": str(self.data_dir),
            "RAGSTREAM_NATS_URL": self.bus_url,
            "RAGSTREAM_POSTGRES_URL": self.postgres.url,
            "RAGSTREAM_GATEWAY_PROGRESS_URL": f"http://127.0.0.1:{self.ports.get('progress', 8081)}",
            "RAGSTREAM_GATEWAY_CHAT_URL": f"http://127.0.0.1:{self.ports.get('chat', 8082)}",
        }
        gateway = self.ports.get("ingest-gateway", 8080)
        page_origins = [f"http://127.0.0.1:{gateway}", f"http://localhost:{gateway}"]
        configured = [o for o in os.environ.get("RAGSTREAM_CORS_ORIGINS", "").split(",") if o.strip()]
        extra["RAGSTREAM_CORS_ORIGINS"] = ",".join([*page_origins, *self.browser_origins, *configured])
        for spec in SERVICES:
            if spec.name in self.ports:
                extra[spec.port_env] = str(self.ports[spec.name])
            if spec.grpc_env and spec.name in self.grpc_ports:
                extra[spec.grpc_env] = str(self.grpc_ports[spec.name])
        if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or self.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
            # no collector: spans go to a file under the data dir, for `make traces`
            extra["RAGSTREAM_TRACES_FILE"] = str(self.traces_file)
            extra.setdefault("OTEL_BSP_SCHEDULE_DELAY", "1000")
        if "RAGSTREAM_SECRET_KEYS" not in os.environ:
            # embedded default: a generated key kept beside the data it protects (production: a Secret)
            extra["RAGSTREAM_SECRET_KEYS"] = key_file(self.data_dir / "secret-keys")
        if "RAGSTREAM_AUTH_MODE" not in os.environ:
            # one person on this machine: no keys (the services default to keys mode, for production)
            extra["RAGSTREAM_AUTH_MODE"] = "open"
        if name in SERVICE_USERS and self.nats:
            # the service's own user, as in Kubernetes (the operator's URL is for tools and tests)
            extra["RAGSTREAM_NATS_URL"] = self.nats.url
            extra["RAGSTREAM_NATS_USER"] = name
            extra["RAGSTREAM_NATS_PASSWORD"] = self.nats_passwords[name]
        extra.update(self.env)
        return python_env(extra)

    @property
    def bus_url(self) -> str:
        """The NATS of the stack as its operator (every right: tools and tests): ``nats_url``, or
        the stack's own server."""
        if self.nats_url:
            return self.nats_url
        assert self.nats, "bus_url before start_servers()"
        return self.nats.url_of(OPERATOR, self.nats_passwords[OPERATOR])

    @property
    def traces_file(self) -> Path:
        """Where the services append their spans when no OTLP endpoint is set."""
        return self.data_dir / "traces.jsonl"

    def _spec(self, name: str) -> ServiceSpec:
        for spec in SERVICES:
            if spec.name == name:
                return spec
        raise KeyError(f"unknown service {name!r}; known: {[s.name for s in SERVICES]}")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_service(self, name: str, *, wait: bool = True) -> None:
        spec = self._spec(name)
        out: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
            self._logs.append(out)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            env=self.service_env(name),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops services first
        )
        if wait:
            self.wait_healthy(name)

    def wait_healthy(self, name: str, *, within_s: float = 180.0) -> None:
        """Wait until the service answers /readyz with 200; raise with its exit code if it died."""
        deadline = time.monotonic() + within_s
        last = "no answer"
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                problem = f"service {name} exited with code {process.returncode} while starting"
                if self._port_was_taken(name):
                    raise PortTaken(f"{problem}: its port was taken")
                raise RuntimeError(problem)
            try:
                response = httpx.get(f"{self.url(name)}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise TimeoutError(f"service {name} not ready after {within_s}s: {last}")

    def _port_was_taken(self, name: str) -> bool:
        """Whether ``name``'s log ends saying it could not bind its HTTP or gRPC port."""
        if self.log_dir is None:
            return False
        try:
            with (self.log_dir / f"{name}.log").open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16_384))
                tail = log.read().decode(errors="replace")
        except OSError:
            return False
        return any(sign in tail for sign in BIND_FAILURES)

    def kill_service(self, name: str) -> None:
        """SIGKILL: the process gets no chance to clean up (crash tests)."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def restart_exited(self) -> list[str]:
        """Start again every service whose process has exited (what ``make run``'s supervisor does
        each second); returns their names. Each is ready when this returns."""
        exited = [name for name, process in self.processes.items() if process.poll() is not None]
        for name in exited:
            self.start_service(name)
        return exited

    def restart_nats(self, *, down_s: float = 0.0, kill: bool = False) -> None:
        """Stop NATS (SIGTERM, or SIGKILL with ``kill``), keep it away ``down_s`` seconds, start it
        again on the same port and store directory. The services reconnect on their own."""
        assert self.nats, "restart_nats() before start()"
        self.nats.restart(down_s=down_s, kill=kill)

    def restart_postgres(self, *, down_s: float = 0.0, mode: str = "fast") -> None:
        """Stop PostgreSQL (``pg_ctl stop -m mode``), keep it away ``down_s`` seconds, start it again
        on the same data and socket. The services' pools reconnect on their own."""
        assert self.postgres, "restart_postgres() before start()"
        self.postgres.restart(down_s=down_s, mode=mode)

    def stop_service(self, name: str, *, timeout_s: float = 30.0) -> None:
        process = self.processes.get(name)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        for spec in reversed(SERVICES):
            self.stop_service(spec.name)
        if self.nats:
            self.nats.stop()
        if self.postgres:
            self.postgres.stop()
        for f in self._logs:
            f.close()
