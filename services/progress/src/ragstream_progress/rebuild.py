"""Rebuilding the projection from the event stream: ``python -m ragstream_progress rebuild``.

Progress owns no facts of its own: every row derives from the events stored in the
``RAGSTREAM_EVENTS`` stream. A rebuild drops the projection's rows and replays every stored
event, from the stream's first sequence, in stream order, through the live consumer's handler
(``handlers.project_event``) with the same stream sequences and trace ids.

Safe beside a running service: the store applies one event at a time and each event id once,
so an event the live consumer applies meanwhile is skipped by the replay and vice versa.
Events stored after the rebuild started are left to the live consumer. Feed clients receive
every rebuilt job again as a change (change numbers keep growing). Only what the stream still
holds comes back: events past its retention (30 days) are gone, and so are their jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

import nats.errors
import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from opentelemetry import context, propagate

from ragstream_core.bus import Delivery
from ragstream_core.events import EVENTS_STREAM, EVENTS_SUBJECTS, TYPE_OF_SUBJECT
from ragstream_progress.handlers import ProgressPorts, project_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    replayed: int  # events read from the stream
    skipped: int  # messages that are no event progress can read (the live consumer dead-letters them)
    last_sequence: int  # the stream position the rebuild caught up to


class RebuildStalled(Exception):
    """The stream stopped delivering before the rebuild reached the position it set out for."""


async def _replay(msg: Msg, ports: ProgressPorts) -> bool:
    event_type = TYPE_OF_SUBJECT.get(msg.subject)
    if event_type is None:
        return False
    try:
        event = event_type.FromString(msg.data)
    except DecodeError:
        return False
    # the live consumer's span continues the producer's trace (traceparent header); the replay
    # runs in the producer's span context itself, so rebuilt rows carry the same trace ids
    token = context.attach(propagate.extract(dict(msg.headers or {})))
    try:
        await project_event(event, Delivery(1, msg.metadata.sequence.stream, msg.subject), ports)
    finally:
        context.detach(token)
    return True


async def rebuild_projection(
    ports: ProgressPorts, js: JetStreamContext, *, idle_timeout_s: float = 30.0
) -> RebuildReport:
    """Drop the projection's rows and apply every event stored in ``RAGSTREAM_EVENTS`` again.

    Reads through an ephemeral ordered consumer up to the stream's last sequence at the start.
    Raises ``RebuildStalled`` if no message arrives for ``idle_timeout_s`` before that; the
    projection is then partial, and running the rebuild again completes it.
    """
    state = (await js.stream_info(EVENTS_STREAM)).state
    await ports.jobs.clear()
    log.info("rebuild.started", first_sequence=state.first_seq, last_sequence=state.last_seq, events=state.messages)
    replayed = skipped = last = 0
    if state.messages == 0:
        return RebuildReport(0, 0, state.last_seq)
    sub = await js.subscribe(
        EVENTS_SUBJECTS, stream=EVENTS_STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    try:
        while last < state.last_seq:
            try:
                msg = await sub.next_msg(timeout=idle_timeout_s)
            except nats.errors.TimeoutError as exc:
                raise RebuildStalled(
                    f"no event for {idle_timeout_s} s at stream sequence {last} of {state.last_seq}; run it again"
                ) from exc
            last = msg.metadata.sequence.stream
            if await _replay(msg, ports):
                replayed += 1
            else:
                skipped += 1
            if msg.metadata.num_pending == 0:
                break  # the tail was removed meanwhile (limits): nothing more to read
    finally:
        await sub.unsubscribe()
    log.info("rebuild.done", replayed=replayed, skipped=skipped, last_sequence=last)
    return RebuildReport(replayed, skipped, last)
