"""A port taken between the stack choosing it and a service binding it costs a retry, not a
failed start."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ragstream_devstack import stack as stack_module
from ragstream_devstack.servers import free_port
from ragstream_devstack.stack import Stack


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port somebody else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_service_whose_port_was_taken_starts_on_another(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed_out: list[int] = []

    def first_one_taken() -> int:
        # the gateway's HTTP port is the first service port chosen: hand it the taken one
        port = taken_port if not handed_out else free_port()
        handed_out.append(port)
        return port

    stack = Stack(data_dir=tmp_path / "data", log_dir=tmp_path / "logs")
    stack.start_servers()
    try:
        monkeypatch.setattr(stack_module, "free_port", first_one_taken)
        stack._choose_ports()
        assert stack.ports["ingest-gateway"] == taken_port
        stack.start_services()
        assert stack.ports["ingest-gateway"] != taken_port
        for name in stack.ports:
            assert httpx.get(f"{stack.url(name)}/readyz", timeout=10).status_code == 200
        assert "address already in use" in (tmp_path / "logs" / "ingest-gateway.log").read_text()
    finally:
        stack.stop()
