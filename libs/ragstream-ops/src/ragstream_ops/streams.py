"""JetStream part: every ragstream stream (events, dead letters, the job-control KV bucket) with its
messages, configuration and durable consumers.

Backup, per stream: the durable consumers' configurations and positions first, then the stream's
configuration and state, then every message up to the last sequence seen at that moment (subject,
headers, data, sequence, time) as JSON Lines through a temporary consumer. Positions taken
before messages means a restored consumer never points past a message the backup lacks.

Restore recreates each stream with its configuration and **the same sequence numbers** (PostgreSQL
rows keep stream sequences: the progress projection orders updates by them, dead-letter replays
name them): ``first_seq`` for the start, and each gap (messages removed by limits, KV history,
deletes) filled with placeholders on a subject of their own that one purge removes at the end.
Deduplication is down to its shortest window (100 ms) while republishing (a stored message id may
recur after its window; such a message waits out the window) and the original configuration is
put back afterwards. Each durable consumer is then created positioned
after the messages it had acknowledged: ``deliver_policy=by_start_sequence`` at its delivered
sequence + 1, or at its ack floor + 1 when messages were still unacknowledged (those are delivered
again; every stage's effect is idempotent). Restored messages get new timestamps, so ``max_age``
counts from the restore.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from ragstream_core.hashing import sha256_file
from ragstream_ops.manifest import CorruptBackup

#: streams of a ragstream deployment: RAGSTREAM_EVENTS, RAGSTREAM_DLQ and KV buckets such as
#: RAGSTREAM_CONTROL (stream KV_RAGSTREAM_CONTROL)
STREAM_PREFIXES = ("RAGSTREAM_", "KV_RAGSTREAM_")
DIRECTORY = "streams"
_FETCH = 256
_GAP_TOKEN = "_ragstream_restore_gap"
_RESERVED_METADATA = "_nats"
_LOADING_WINDOW_S = 0.1  # the shortest deduplication window the server accepts


def ours(name: str) -> bool:
    return name.startswith(STREAM_PREFIXES)


async def list_streams(js: JetStreamContext) -> list[StreamInfo]:
    """Every ragstream stream on the server, by name."""
    found: list[StreamInfo] = []
    offset = 0
    while True:
        page = await js.streams_info(offset=offset)
        found.extend(info for info in page if info.config.name and ours(info.config.name))
        if len(page) < 256:  # the server's page size
            break
        offset += len(page)
    return sorted(found, key=lambda info: info.config.name or "")


async def message_count(js: JetStreamContext) -> int:
    """Messages held by ragstream streams (0: nothing to lose)."""
    return sum(info.state.messages for info in await list_streams(js))


async def pulling_consumers(js: JetStreamContext, *, watch_s: float = 0.0) -> list[str]:
    """``stream/consumer`` of every durable consumer someone pulls from: services running against
    this deployment. A service keeps a pull request open almost all the time (the bus renews its
    one-second fetch at once), so looking a few times over ``watch_s`` seconds sees it."""
    pulling: set[str] = set()
    deadline = time.monotonic() + watch_s
    while True:
        durable = 0
        for info in await list_streams(js):
            name = info.config.name or ""
            for consumer in await js.consumers_info(name):
                if consumer.config.durable_name:
                    durable += 1
                    if (consumer.num_waiting or 0) > 0:
                        pulling.add(f"{name}/{consumer.name}")
        if pulling or not durable or time.monotonic() >= deadline:
            return sorted(pulling)
        await asyncio.sleep(0.25)


def _user_metadata(config: dict[str, Any]) -> None:
    """Drop the server's own metadata keys (it sets them again on create)."""
    metadata = config.get("metadata")
    if isinstance(metadata, dict):
        kept = {k: v for k, v in metadata.items() if not k.startswith(_RESERVED_METADATA)}
        if kept:
            config["metadata"] = kept
        else:
            config.pop("metadata")


async def _consumers(js: JetStreamContext, stream: str) -> list[dict[str, Any]]:
    consumers: list[dict[str, Any]] = []
    for info in await js.consumers_info(stream):
        config = info.config
        if not config.durable_name:  # ephemeral (an ordered reader, a backup in progress): not state
            continue
        raw = config.as_dict()
        _user_metadata(raw)
        consumers.append(
            {
                "name": info.name,
                "config": raw,
                "delivered_stream_seq": info.delivered.stream_seq if info.delivered else 0,
                "ack_floor_stream_seq": info.ack_floor.stream_seq if info.ack_floor else 0,
                "num_ack_pending": info.num_ack_pending or 0,
            }
        )
    return sorted(consumers, key=lambda c: str(c["name"]))


def _record(msg: Msg) -> dict[str, Any]:
    md = msg.metadata
    return {
        "seq": md.sequence.stream,
        "subject": msg.subject,
        "headers": dict(msg.headers) if msg.headers else None,
        "data": base64.b64encode(msg.data).decode(),
        "time": md.timestamp.isoformat() if md.timestamp else None,
    }


async def _export_messages(js: JetStreamContext, stream: str, last_seq: int, out: Path) -> int:
    """Write every message of ``stream`` up to ``last_seq`` to ``out`` (JSON Lines); returns the count."""
    name = f"ragstream-backup-{uuid.uuid4().hex[:12]}"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            name=name,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=120.0,  # gone by itself if this process dies
            mem_storage=True,
        ),
    )
    written = 0
    try:
        sub = await js.pull_subscribe_bind(consumer=name, stream=stream)
        with out.open("w") as f:
            seq = 0
            while seq < last_seq:
                try:
                    msgs = await sub.fetch(_FETCH, timeout=5.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    if (await js.consumer_info(stream, name)).num_pending == 0:
                        break  # nothing left: the tail was removed (limits) after the state was read
                    continue  # a slow server, not the end
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > last_seq:
                        break
                    f.write(json.dumps(_record(msg), separators=(",", ":")) + "\n")
                    written += 1
                if msgs and msgs[-1].metadata.num_pending == 0:
                    break
        await sub.unsubscribe()
    finally:
        with contextlib.suppress(nats.errors.Error, NotFoundError):
            await js.delete_consumer(stream, name)
    return written


async def backup_streams(js: JetStreamContext, target: Path) -> dict[str, Any]:
    """Export every ragstream stream under ``target/streams``; returns the manifest part."""
    directory = target / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    streams: dict[str, Any] = {}
    files: dict[str, str] = {}
    for listed in await list_streams(js):
        name = listed.config.name or ""
        consumers = await _consumers(js, name)  # positions before messages (see module docstring)
        info = await js.stream_info(name)
        config = info.config.as_dict()
        _user_metadata(config)
        messages_file = directory / f"{name}.jsonl"
        if info.state.messages:
            count = await _export_messages(js, name, info.state.last_seq, messages_file)
        else:
            messages_file.write_text("")
            count = 0
        meta = {
            "config": config,
            "first_seq": info.state.first_seq,
            "last_seq": info.state.last_seq,
            "messages": count,
            "consumers": consumers,
        }
        meta_file = directory / f"{name}.json"
        meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for path in (meta_file, messages_file):
            files[f"{DIRECTORY}/{path.name}"] = sha256_file(path)
        streams[name] = {"messages": count, "first_seq": meta["first_seq"], "last_seq": meta["last_seq"]}
        streams[name]["consumers"] = [c["name"] for c in consumers]
    return {"streams": streams, "files": files}


def _gap_subject(config: StreamConfig) -> str:
    """A subject inside the stream that no ragstream message uses: the placeholders' subject."""
    subjects = config.subjects or []
    if not subjects:
        raise CorruptBackup(f"stream {config.name} has no subjects in the backup; cannot republish into it")
    tokens = subjects[0].split(".")
    return ".".join(_GAP_TOKEN if t in ("*", ">") else t for t in tokens) + (
        "" if tokens[-1] in ("*", ">") else f".{_GAP_TOKEN}"
    )


def _messages(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorruptBackup(f"{path} line {line_no} is not JSON: {exc}") from exc


async def _publish_at(js: JetStreamContext, stream: str, expected: int, subject: str, **kwargs: Any) -> None:
    ack = await js.publish(subject, stream=stream, timeout=10, **kwargs)
    if ack.duplicate:  # the same message id stored twice, further apart than its window was
        await asyncio.sleep(_LOADING_WINDOW_S * 1.5)
        ack = await js.publish(subject, stream=stream, timeout=10, **kwargs)
    if ack.seq != expected:
        raise RuntimeError(
            f"stream {stream}: republished message landed at sequence {ack.seq}, expected {expected}; "
            "was something else publishing into it during the restore?"
        )


async def _restore_stream(js: JetStreamContext, source: Path, name: str) -> int:
    meta = json.loads((source / DIRECTORY / f"{name}.json").read_text())
    original = StreamConfig.from_response(dict(meta["config"]))
    first_seq, last_seq = int(meta["first_seq"]), int(meta["last_seq"])
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(name)
    loading = StreamConfig.from_response(dict(meta["config"]))
    loading.duplicate_window = _LOADING_WINDOW_S  # a stored message id may recur after its window
    if first_seq > 1:
        loading.first_seq = first_seq
    await js.add_stream(loading)
    gap_subject = _gap_subject(original)
    expected = max(first_seq, 1)
    restored = 0
    for record in _messages(source / DIRECTORY / f"{name}.jsonl"):
        seq = int(record["seq"])
        while expected < seq:
            await _publish_at(js, name, expected, gap_subject, payload=b"")
            expected += 1
        headers = {k: v for k, v in (record.get("headers") or {}).items() if not k.startswith("Nats-Expected-")}
        await _publish_at(
            js, name, expected, record["subject"], payload=base64.b64decode(record["data"]), headers=headers or None
        )
        expected += 1
        restored += 1
    while expected <= last_seq:
        await _publish_at(js, name, expected, gap_subject, payload=b"")
        expected += 1
    await js.purge_stream(name, subject=gap_subject)
    await js.update_stream(original)
    if restored != int(meta["messages"]):
        raise CorruptBackup(
            f"stream {name}: {restored} messages in the backup file, the manifest says {meta['messages']}"
        )
    for consumer in meta["consumers"]:
        config = ConsumerConfig.from_response(dict(consumer["config"]))
        position = (
            int(consumer["delivered_stream_seq"])
            if int(consumer["num_ack_pending"]) == 0
            else int(consumer["ack_floor_stream_seq"])
        )
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = position + 1
        config.opt_start_time = None
        await js.add_consumer(name, config)
    return restored


async def restore_streams(js: JetStreamContext, source: Path, part: dict[str, Any]) -> dict[str, int]:
    """Recreate every stream of the backup (replacing any of the same name); messages per stream."""
    restored: dict[str, int] = {}
    for name in sorted(part.get("streams", {})):
        restored[name] = await _restore_stream(js, source, name)
    return restored
