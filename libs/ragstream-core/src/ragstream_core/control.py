"""Steering running jobs: a JetStream key-value bucket every stage reads at its boundaries.

The gateway owns job control (it queues, releases, pauses and cancels jobs). A job that is
already released is steered through this bucket: key ``job.<job_id>`` holds what should happen
to it. Stages check the key before they start a message and before they make their effect
visible (the parser before announcing its chunks, the embedder before activating a version),
so a cancelled or paused job stops at the next stage boundary and no half-indexed version is
ever shown. A paused run stops and goes back to the gateway's queue; a cancelled run ends.

Guarantee: ``check`` raises only for the run the order was given for (or an older one), so a
job retried or resumed after the order (a newer run) is not stopped by a stale entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from ragstream_core.jetstream import ensure_stream, refused_error
from ragstream_core.proto.ragstream.v1.events_pb2 import EventMeta

BUCKET = "RAGSTREAM_CONTROL"


class JobStopped(Exception):
    """The job was steered away while a stage held it; the bus settles the message."""

    action = "stopped"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobCancelled(JobStopped):
    action = "cancelled"


class JobPaused(JobStopped):
    action = "paused"


@dataclass(frozen=True)
class Order:
    action: str  # "paused" or "cancelled"
    retry: int  # the run it applies to (and older runs)
    actor: str


class JobControl:
    """Read and write steering orders (one small KV entry per steered job)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, *, replicas: int = 1) -> JobControl:
        """The bucket, created with ``replicas`` if missing, raised to them if it has fewer."""
        try:
            kv = await js.key_value(BUCKET)
        except nats.js.errors.BucketNotFoundError:
            try:
                kv = await js.create_key_value(
                    bucket=BUCKET, history=1, description="ragstream job control", replicas=replicas
                )
            except nats.js.errors.APIError as exc:
                try:  # another service created it first, or the replica count was refused
                    kv = await js.key_value(BUCKET)
                except nats.js.errors.BucketNotFoundError:
                    raise refused_error(f"KV_{BUCKET}", replicas, exc) from exc
        info = await js.stream_info(f"KV_{BUCKET}")
        if (info.config.num_replicas or 1) < replicas:
            await ensure_stream(js, dataclasses.replace(info.config, num_replicas=replicas))
        return cls(kv)

    async def order(self, job_id: str, action: str, *, retry: int, actor: str) -> None:
        value = json.dumps({"action": action, "retry": retry, "actor": actor}).encode()
        await self.kv.put(f"job.{job_id}", value)

    async def clear(self, job_id: str) -> None:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self.kv.delete(f"job.{job_id}")

    async def get(self, job_id: str) -> Order | None:
        try:
            entry = await self.kv.get(f"job.{job_id}")
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if not entry.value:
            return None
        raw = json.loads(entry.value)
        return Order(action=str(raw["action"]), retry=int(raw["retry"]), actor=str(raw.get("actor", "")))

    async def check(self, meta: EventMeta) -> None:
        """Raise ``JobCancelled`` or ``JobPaused`` if the run of ``meta`` was steered away."""
        order = await self.get(meta.job_id)
        if order is None or meta.retry > order.retry:
            return
        if order.action == "cancelled":
            raise JobCancelled(f"cancelled by {order.actor}")
        if order.action == "paused":
            raise JobPaused(f"paused by {order.actor}; back in the queue until resumed")
