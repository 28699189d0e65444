"""A JetStream cluster of three nats-servers on this machine (tests of replicated streams).

The production overlay runs three servers (deploy/k8s); this starts the same topology on
127.0.0.1: each server with its own store, client port and route port, routes to the others,
``server_name`` n0..n2. ``start`` returns once JetStream has a meta leader, so streams with
three replicas can be created right away.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats

from ragstream_devstack.servers import free_port, nats_server_binary, wait_for_port

__all__ = ["NatsCluster"]


@dataclass
class NatsCluster:
    """``size`` nats-servers forming one JetStream cluster, storing under ``base_dir``."""

    base_dir: Path
    size: int = 3
    client_ports: list[int] = field(default_factory=list)
    route_ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.client_ports]

    @property
    def url(self) -> str:
        """The first server (a client learns the others from it)."""
        return self.urls[0]

    def start(self, *, within_s: float = 60.0) -> NatsCluster:
        self.client_ports = [free_port() for _ in range(self.size)]
        self.route_ports = [free_port() for _ in range(self.size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.route_ports)
        try:
            for i in range(self.size):
                node = self.base_dir / f"n{i}"
                node.mkdir(parents=True, exist_ok=True)
                config = node / "nats.conf"
                config.write_text(
                    f'server_name: "n{i}"\n'
                    f"listen: 127.0.0.1:{self.client_ports[i]}\n"
                    f'jetstream {{ store_dir: "{node / "store"}" }}\n'
                    f'cluster {{ name: "ragstream-test"\n  listen: 127.0.0.1:{self.route_ports[i]}\n'
                    f"  routes: [{routes}] }}\n"
                )
                log = open(node / "nats-server.log", "ab")  # noqa: SIM115 - owned by the process
                self.processes.append(
                    subprocess.Popen(
                        [nats_server_binary(), "-c", str(config)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            for port in self.client_ports:
                wait_for_port(port, within_s=within_s)
            asyncio.run(self._wait_meta_leader(within_s))
        except BaseException:
            self.stop()
            raise
        return self

    async def _wait_meta_leader(self, within_s: float) -> None:
        nc = await nats.connect(self.urls)
        try:
            deadline = time.monotonic() + within_s
            last = "no answer"
            while time.monotonic() < deadline:
                try:
                    info = await nc.jetstream().account_info()
                    if info is not None:
                        return
                except Exception as exc:
                    last = str(exc) or type(exc).__name__
                await asyncio.sleep(0.25)
            raise TimeoutError(f"the JetStream cluster elected no leader within {within_s}s: {last}")
        finally:
            await nc.close()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
