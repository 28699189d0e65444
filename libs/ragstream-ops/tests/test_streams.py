"""JetStream part against a real nats-server: same sequences, same messages, consumers positioned
after what they had acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from ragstream_devstack.servers import NatsServer, free_port
from ragstream_ops.streams import backup_streams, message_count, pulling_consumers, restore_streams


async def _fill(js: nats.js.JetStreamContext) -> None:
    await js.add_stream(StreamConfig(name="RAGSTREAM_EVENTS", subjects=["ragstream.events.>"], duplicate_window=120))
    await js.add_stream(StreamConfig(name="OTHER", subjects=["other.>"]))
    for i in range(10):
        headers = {"Nats-Msg-Id": f"m{i}", "Ragstream-Type": "t"}
        await js.publish(f"ragstream.events.e{i % 3}", f"event {i}".encode(), headers=headers)
    await js.publish("other.x", b"not ours")
    await js.update_stream(StreamConfig(name="RAGSTREAM_EVENTS", subjects=["ragstream.events.>"], duplicate_window=0.1))
    for _ in range(50):  # the server forgets m9 once the shorter window has passed
        await asyncio.sleep(0.2)
        again = await js.publish("ragstream.events.e9", b"the same id, after its window", headers={"Nats-Msg-Id": "m9"})
        if not again.duplicate:
            break
    assert again.seq == 11
    await js.update_stream(StreamConfig(name="RAGSTREAM_EVENTS", subjects=["ragstream.events.>"], duplicate_window=120))
    await js.delete_msg("RAGSTREAM_EVENTS", 4)  # a gap in the middle
    await js.delete_msg("RAGSTREAM_EVENTS", 10)  # another
    await js.publish("ragstream.events.e2", b"tail")
    await js.delete_msg("RAGSTREAM_EVENTS", 12)  # and one at the end
    kv = await js.create_key_value(bucket="RAGSTREAM_CONTROL", history=1)
    await kv.put("job.a", b"paused")
    await kv.put("job.a", b"cancelled")  # the first revision goes: a gap at the start
    await kv.put("job.b", b"paused")
    await kv.delete("job.b")
    # a consumer that acknowledged up to sequence 6, with 7 delivered and not acknowledged
    sub = await js.pull_subscribe(
        "ragstream.events.>",
        durable="worker",
        stream="RAGSTREAM_EVENTS",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, deliver_policy=DeliverPolicy.ALL),
    )
    msgs = await sub.fetch(6, timeout=5)
    for msg in msgs[:5]:
        await msg.ack_sync()
    # one consumer that has seen everything
    done = await js.pull_subscribe("ragstream.events.e1", durable="observer", stream="RAGSTREAM_EVENTS")
    for msg in await done.fetch(10, timeout=2):
        await msg.ack_sync()


async def _read(js: nats.js.JetStreamContext, stream: str) -> list[tuple[int, str, bytes, dict[str, str] | None]]:
    info = await js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")} or None
        found.append((seq, msg.subject, msg.data, headers))
    return found


async def test_streams_come_back_with_their_sequences_and_consumer_positions(tmp_path: Path) -> None:
    first = NatsServer(tmp_path / "nats1", port=free_port()).start()
    second = NatsServer(tmp_path / "nats2", port=free_port()).start()
    try:
        nc = await nats.connect(first.url)
        js = nc.jetstream()
        await _fill(js)
        before = {s: await _read(js, s) for s in ("RAGSTREAM_EVENTS", "KV_RAGSTREAM_CONTROL")}
        before_state = {s: (await js.stream_info(s)).state for s in before}
        part = await backup_streams(js, tmp_path / "backup")
        await nc.close()

        assert sorted(part["streams"]) == ["KV_RAGSTREAM_CONTROL", "RAGSTREAM_EVENTS"]  # OTHER is not ours
        assert part["streams"]["RAGSTREAM_EVENTS"]["messages"] == 9
        assert part["streams"]["RAGSTREAM_EVENTS"]["consumers"] == ["observer", "worker"]

        nc = await nats.connect(second.url)
        js = nc.jetstream()
        assert await message_count(js) == 0
        restored = await restore_streams(js, tmp_path / "backup", part)
        assert restored == {"KV_RAGSTREAM_CONTROL": 2, "RAGSTREAM_EVENTS": 9}
        for stream, messages in before.items():
            state = (await js.stream_info(stream)).state
            assert (state.first_seq, state.last_seq, state.messages) == (
                before_state[stream].first_seq,
                before_state[stream].last_seq,
                before_state[stream].messages,
            )
            assert await _read(js, stream) == messages
        info = await js.stream_info("RAGSTREAM_EVENTS")
        assert info.config.duplicate_window == 120  # the original configuration is back

        kv = await js.key_value("RAGSTREAM_CONTROL")
        assert (await kv.get("job.a")).value == b"cancelled"
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("job.b")

        # the worker had acknowledged 1-6 (4 was deleted) and held 7: it gets 7 again, then 8, 9 and 11
        assert (await js.consumer_info("RAGSTREAM_EVENTS", "worker")).config.ack_wait == 60
        worker = await js.pull_subscribe("ragstream.events.>", durable="worker", stream="RAGSTREAM_EVENTS")
        got = [m.metadata.sequence.stream for m in await worker.fetch(10, timeout=2)]
        assert got == [7, 8, 9, 11]
        observer = await js.pull_subscribe("ragstream.events.e1", durable="observer", stream="RAGSTREAM_EVENTS")
        with pytest.raises(nats.errors.TimeoutError):
            await observer.fetch(1, timeout=1)
        # new messages continue after the restored ones, and reach the consumers once
        ack = await js.publish("ragstream.events.e1", b"new")
        assert ack.seq == 13
        assert [m.data for m in await observer.fetch(5, timeout=2)] == [b"new"]
        await observer.unsubscribe()
        await worker.unsubscribe()

        # restoring again (force) replaces the streams: the new message is gone, the rest is back
        await restore_streams(js, tmp_path / "backup", part)
        assert await _read(js, "RAGSTREAM_EVENTS") == before["RAGSTREAM_EVENTS"]
        assert (await js.consumer_info("RAGSTREAM_EVENTS", "worker")).num_pending == 4  # 7, 8, 9, 11
        await nc.close()
    finally:
        first.stop()
        second.stop()


async def test_consumers_being_pulled_from_are_named(isolated_nats: NatsServer) -> None:
    nc = await nats.connect(isolated_nats.url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="RAGSTREAM_EVENTS", subjects=["ragstream.events.>"]))
        idle = await js.pull_subscribe("ragstream.events.>", durable="idle", stream="RAGSTREAM_EVENTS")
        busy = await js.pull_subscribe("ragstream.events.>", durable="busy", stream="RAGSTREAM_EVENTS")
        assert await pulling_consumers(js) == []
        waiting = asyncio.create_task(busy.fetch(1, timeout=10))  # what a running service does
        await asyncio.sleep(0.5)
        assert await pulling_consumers(js) == ["RAGSTREAM_EVENTS/busy"]
        await js.publish("ragstream.events.x", b"wakes it")
        assert len(await waiting) == 1
        await idle.unsubscribe()
    finally:
        await nc.close()
