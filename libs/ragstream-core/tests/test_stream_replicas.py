"""RAGSTREAM_STREAM_REPLICAS on real NATS: a three-server JetStream cluster gets R3 streams and
bucket (and R1 ones are raised), a single server refuses R3 with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from ragstream_core.bus import Bus
from ragstream_core.control import BUCKET
from ragstream_core.events import DEAD_LETTER_STREAM, EVENTS_STREAM
from ragstream_core.jetstream import StreamSetupError
from ragstream_core.settings import CoreSettings
from ragstream_devstack.nats_cluster import NatsCluster
from ragstream_devstack.servers import NatsServer

STREAMS = (EVENTS_STREAM, DEAD_LETTER_STREAM, f"KV_{BUCKET}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    running = NatsCluster(tmp_path / "cluster").start()
    yield running
    running.stop()


async def replicas(bus: Bus) -> dict[str, int]:
    return {name: (await bus.js.stream_info(name)).config.num_replicas or 1 for name in STREAMS}


def test_the_setting_defaults_to_one_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoreSettings().stream_replicas == 1
    monkeypatch.setenv("RAGSTREAM_STREAM_REPLICAS", "3")
    assert CoreSettings().stream_replicas == 3
    monkeypatch.setenv("RAGSTREAM_STREAM_REPLICAS", "0")
    with pytest.raises(ValueError, match="stream_replicas"):
        CoreSettings()


async def test_a_single_server_gets_one_replica(isolated_nats: NatsServer) -> None:
    bus = await Bus.from_settings(CoreSettings(nats_url=isolated_nats.url, stream_replicas=1), service="test")
    try:
        await bus.job_control()
        assert await replicas(bus) == dict.fromkeys(STREAMS, 1)
    finally:
        await bus.stop()


async def test_a_single_server_refuses_three_replicas_saying_what_to_set(isolated_nats: NatsServer) -> None:
    with pytest.raises(StreamSetupError, match=r"RAGSTREAM_STREAM_REPLICAS must be at most .*\(1 for a single"):
        await Bus.connect(isolated_nats.url, service="test", stream_replicas=3)
    nc = await nats.connect(isolated_nats.url)
    try:  # nothing was created with fewer copies than asked
        names = [s.config.name for s in await nc.jetstream().streams_info()]
        assert EVENTS_STREAM not in names
    finally:
        await nc.close()


async def test_a_cluster_gets_three_replicas_of_both_streams_and_the_bucket(cluster: NatsCluster) -> None:
    bus = await Bus.connect(cluster.url, service="test", stream_replicas=3)
    try:
        await bus.job_control()
        assert await replicas(bus) == dict.fromkeys(STREAMS, 3)
        # a second service declaring the same streams changes nothing
        again = await Bus.connect(cluster.urls[1], service="test-2", stream_replicas=3)
        await again.job_control()
        assert await replicas(again) == dict.fromkeys(STREAMS, 3)
        await again.stop()
    finally:
        await bus.stop()


async def test_streams_made_with_one_replica_are_raised_to_the_setting_keeping_their_messages(
    cluster: NatsCluster,
) -> None:
    first = await Bus.connect(cluster.url, service="old", stream_replicas=1)
    await first.job_control()
    await first.js.publish("ragstream.events.test.kept", b"still here")
    assert await replicas(first) == dict.fromkeys(STREAMS, 1)
    await first.stop()

    bus = await Bus.connect(cluster.url, service="new", stream_replicas=3)
    try:
        await bus.job_control()
        assert await replicas(bus) == dict.fromkeys(STREAMS, 3)
        info = await bus.js.stream_info(EVENTS_STREAM)
        assert info.state.messages == 1
        # a stream with more replicas than asked is left alone
        lower = await Bus.connect(cluster.url, service="lower", stream_replicas=1)
        assert await replicas(lower) == dict.fromkeys(STREAMS, 3)
        await lower.stop()
    finally:
        await bus.stop()


async def test_a_refused_raise_names_the_stream_and_the_setting(isolated_nats: NatsServer) -> None:
    nc = await nats.connect(isolated_nats.url)
    try:  # an R1 stream exists; raising it to 3 is refused by a single server
        await nc.jetstream().add_stream(StreamConfig(name=EVENTS_STREAM, subjects=["ragstream.events.>"]))
    finally:
        await nc.close()
    with pytest.raises(StreamSetupError, match=rf"stream {EVENTS_STREAM} with 3 replica"):
        await Bus.connect(isolated_nats.url, service="test", stream_replicas=3)
