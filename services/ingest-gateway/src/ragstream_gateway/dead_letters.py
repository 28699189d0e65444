"""Dead letters: messages a stage gave up on, kept in the RAGSTREAM_DLQ stream, listed and replayed.

A replay after a fix either retries the job (when the dead letter failed it: a new run from the
start, like ``POST /v1/jobs/{id}:retry``) or, for a message an observer could not apply (the
progress projection, the gateway's own tracker), publishes the original event again under a new
message id, so every consumer of its subject sees it once more (they are idempotent).

Each tenant sees its own dead letters: the tenant of the event's body, else of its
``Ragstream-Tenant`` header (a body this version cannot read still names its owner). A message
that names no tenant at all (published by something other than a ragstream service) is shown
only to the operators' tenant, ``RAGSTREAM_DEFAULT_TENANT`` (the bootstrap admin key's).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import nats.js.errors
from google.protobuf.message import DecodeError, Message

from ragstream_core.bus import Bus
from ragstream_core.errors import NotFound
from ragstream_core.events import DEAD_LETTER_STREAM, TENANT_HEADER, TYPE_OF_SUBJECT, message_id
from ragstream_gateway.jobs import retry_job
from ragstream_gateway.ports import GatewayPorts


def _decode(subject: str, data: bytes) -> Message | None:
    event_type = TYPE_OF_SUBJECT.get(subject)
    if event_type is None:
        return None
    try:
        return event_type.FromString(data)
    except DecodeError:
        return None


def _entry(seq: int, headers: dict[str, str], data: bytes, at: datetime | None) -> dict[str, Any]:
    subject = headers.get("Ragstream-Dlq-Subject", "")
    event = _decode(subject, data)
    meta = getattr(event, "meta", None)
    return {
        "sequence": seq,
        "stage": headers.get("Ragstream-Dlq-Stage", ""),
        "reason": headers.get("Ragstream-Dlq-Reason", ""),
        "deliveries": int(headers.get("Ragstream-Dlq-Deliveries", "0") or 0),
        "subject": subject,
        "event_type": type(event).__name__ if event is not None else None,
        "job_id": meta.job_id if meta else None,
        "tenant_id": (meta.tenant_id if meta else None) or headers.get(TENANT_HEADER) or None,
        "collection_id": meta.collection_id if meta else None,
        "document_id": meta.document_id if meta else None,
        "file_name": meta.file_name if meta else None,
        "dead_lettered_at": at.isoformat() if at else None,
    }


def _visible(entry: dict[str, Any], tenant_id: str, operators: str) -> bool:
    """May ``tenant_id`` see this dead letter (see the module's docstring)?"""
    return entry["tenant_id"] == tenant_id or (entry["tenant_id"] is None and tenant_id == operators)


async def _replays(ports: GatewayPorts, sequences: list[int]) -> dict[int, str]:
    async with ports.documents.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT stream_sequence, replayed_at FROM gateway.dead_letter_replays WHERE stream_sequence = ANY(%s)",
            (sequences,),
        )
        return {int(r[0]): r[1].isoformat() for r in await cur.fetchall()}


async def list_dead_letters(
    ports: GatewayPorts,
    bus: Bus,
    tenant_id: str,
    *,
    stage: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Dead letters of one tenant, newest first, paged by ``before`` (a stream sequence)."""
    info = await bus.js.stream_info(DEAD_LETTER_STREAM)
    if info.state.messages == 0:
        return {"dead_letters": [], "next_before": None}
    first, last = max(info.state.first_seq, 1), info.state.last_seq
    seq = min(last, (before - 1) if before else last)
    entries: list[dict[str, Any]] = []
    scanned = 0
    while seq >= first and len(entries) < limit and scanned < 10_000:
        scanned += 1
        try:
            msg = await bus.js.get_msg(DEAD_LETTER_STREAM, seq)
        except nats.js.errors.NotFoundError:
            seq -= 1
            continue
        entry = _entry(seq, dict(msg.headers or {}), msg.data or b"", _time_of(msg))
        if _visible(entry, tenant_id, ports.settings.default_tenant) and (not stage or entry["stage"] == stage):
            entries.append(entry)
        seq -= 1
    replays = await _replays(ports, [e["sequence"] for e in entries])
    for entry in entries:
        entry["replayed_at"] = replays.get(entry["sequence"])
    return {"dead_letters": entries, "next_before": entries[-1]["sequence"] if len(entries) == limit else None}


def _time_of(msg: Any) -> datetime | None:
    raw = getattr(msg, "time", None)
    if isinstance(raw, datetime):
        return raw.astimezone(UTC)
    return None


async def dead_letter(bus: Bus, tenant_id: str, seq: int, *, operators: str) -> tuple[dict[str, Any], Message | None]:
    """One dead letter ``tenant_id`` may see (404 otherwise), and its event if this version reads it."""
    try:
        msg = await bus.js.get_msg(DEAD_LETTER_STREAM, seq)
    except nats.js.errors.NotFoundError:
        raise NotFound(f"dead letter {seq} does not exist") from None
    headers = dict(msg.headers or {})
    entry = _entry(seq, headers, msg.data or b"", _time_of(msg))
    if not _visible(entry, tenant_id, operators):
        raise NotFound(f"dead letter {seq} does not exist")
    return entry, _decode(entry["subject"], msg.data or b"")


async def replay_dead_letter(ports: GatewayPorts, bus: Bus, tenant_id: str, seq: int, *, actor: str) -> dict[str, Any]:
    """Replay one dead letter; answers what was done."""
    entry, event = await dead_letter(bus, tenant_id, seq, operators=ports.settings.default_tenant)
    if event is None:
        raise NotFound(f"dead letter {seq} holds no event this version can read ({entry['subject']!r})")
    job_id = entry["job_id"]
    rows = await ports.documents.versions_of_jobs([job_id]) if job_id else {}
    row = rows.get(job_id) if job_id else None
    if row is not None and row.status in ("failed", "cancelled"):
        fresh = await retry_job(ports, await bus.job_control(), tenant_id, job_id, actor=actor)
        outcome: dict[str, Any] = {"replayed": "job retried", "job_id": job_id, "retry": fresh.retry}
    else:
        await bus.publish(event, msg_id=f"{message_id(event)}:replay:{seq}")
        outcome = {"replayed": "event published again", "job_id": job_id, "subject": entry["subject"]}
    async with ports.documents.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO gateway.dead_letter_replays (stream_sequence, actor, job_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (stream_sequence) DO UPDATE SET replayed_at = now(), actor = EXCLUDED.actor",
            (seq, actor, job_id),
        )
    return {"sequence": seq, **outcome}
