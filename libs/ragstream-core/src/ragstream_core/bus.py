"""The one way services talk: JetStream events and NATS request/reply.

``Bus.consume`` runs a stage handler over a durable pull consumer with these guarantees:

- at-least-once: a message is acked only after its handler returned and the handler's output
  event is stored in JetStream; a crash before that means redelivery after ``ack_wait``;
- deterministic output ids: the output is published with ``Nats-Msg-Id`` from
  ``events.message_id`` (job and stage), so a retried publish is dropped as a duplicate;
- bounded retries: a failing handler is retried with a growing delay; once the message was
  delivered ``max_deliver`` times, or at once for a non-retryable error, the job is failed
  with a ``JobFailed`` event and the message is copied to the dead-letter stream, then acked.
  Redeliveries beyond the limit (a message that kills its process) are dead-lettered
  without running the handler, so no job stays stuck;
- backpressure: at most ``batch`` messages are in flight per consumer, and a free slot is
  refilled at once (no waiting for the slowest message of a batch);
- trace context travels in the NATS headers (W3C ``traceparent``); every handler runs in a
  consumer span that continues the producer's trace. Spans follow the OpenTelemetry messaging
  conventions: ``publish <subject>`` (PRODUCER) and ``process <subject>`` (CONSUMER) with
  ``messaging.system=nats``, ``messaging.destination.name``, ``messaging.operation`` and
  ``messaging.message.id``;
- each durable consumer's lag, unacked and redelivered counts are read from JetStream every
  ``consumer_poll_s`` seconds into the ``ragstream_consumer_*`` gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats
import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from ragstream_core.bus_tracing import mark_job, messaging_attributes, process_span, tracer
from ragstream_core.control import JobCancelled, JobControl, JobStopped
from ragstream_core.errors import mapping_for
from ragstream_core.events import (
    DEAD_LETTER_STREAM,
    DEAD_LETTER_SUBJECTS,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    SUBJECT_OF,
    TENANT_HEADER,
    TYPE_HEADER,
    TYPE_OF_SUBJECT,
    message_id,
    next_meta,
    stamp,
)
from ragstream_core.jetstream import ensure_stream
from ragstream_core.nats_users import redacted
from ragstream_core.proto.ragstream.v1.events_pb2 import JobControlled, JobFailed
from ragstream_core.settings import CoreSettings
from ragstream_core.telemetry import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    DEAD_LETTERS,
    FAILURES,
    IN_FLIGHT,
    MESSAGES,
    REDELIVERIES,
    STAGE_DURATION,
)

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Message)
R = TypeVar("R", bound=Message)


async def _no_checkpoint() -> None:
    return None


@dataclass(frozen=True)
class Delivery:
    """What a handler may know of the message it handles."""

    attempt: int
    stream_sequence: int
    subject: str
    #: raises ``JobStopped`` if the job was cancelled or paused meanwhile; a handler awaits it
    #: before it makes its effect visible (a no-op for consumers that are not steered)
    checkpoint: Callable[[], Awaitable[None]] = _no_checkpoint


Handler = Callable[[E, Delivery], Awaitable[Message | None]]


class Bus:
    """A connection to NATS with the project's streams declared. One per process."""

    def __init__(
        self,
        nc: NatsClient,
        *,
        service: str,
        max_deliver: int = 5,
        ack_wait_s: float = 30.0,
        retry_delay_s: float = 1.0,
        consumer_poll_s: float = 5.0,
        stream_replicas: int = 1,
    ) -> None:
        self.nc = nc
        self.stream_replicas = stream_replicas
        self.consumer_poll_s = consumer_poll_s
        self.js: JetStreamContext = nc.jetstream()
        self.service = service
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self.retry_delay_s = retry_delay_s
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._control: JobControl | None = None

    async def job_control(self) -> JobControl:
        """The job-control bucket (opened, or created, on first use)."""
        if self._control is None:
            self._control = await JobControl.open(self.js, replicas=self.stream_replicas)
        return self._control

    @classmethod
    async def from_settings(cls, settings: CoreSettings, *, service: str) -> Bus:
        """Connect with the URL, delivery limit, ack wait and retry delay of ``settings``."""
        return await cls.connect(
            settings.nats_url,
            service=service,
            user=settings.nats_user,
            password=settings.nats_password,
            max_deliver=settings.max_deliver,
            ack_wait_s=settings.ack_wait_s,
            retry_delay_s=settings.retry_delay_s,
            consumer_poll_s=settings.consumer_poll_s,
            stream_replicas=settings.stream_replicas,
        )

    async def check(self) -> None:
        """Readiness: raise if the connection to NATS is down."""
        if not self.nc.is_connected:
            raise ConnectionError("not connected to NATS")

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        service: str,
        user: str = "",
        password: str = "",
        max_deliver: int = 5,
        ack_wait_s: float = 30.0,
        retry_delay_s: float = 1.0,
        consumer_poll_s: float = 5.0,
        stream_replicas: int = 1,
    ) -> Bus:
        """Connect (as ``user``, if given: ``ragstream_core.nats_users``), retrying until the server
        answers, and declare the streams idempotently, with ``stream_replicas`` replicas
        (``StreamSetupError`` if the server cannot give them)."""
        credentials: dict[str, str] = {"user": user, "password": password} if user else {}

        async def on_error(error: Exception) -> None:
            log.warning("bus.connection_error", error=str(error) or type(error).__name__)

        async def on_disconnected() -> None:
            log.warning("bus.disconnected", url=redacted(url))

        async def on_reconnected() -> None:
            log.info("bus.reconnected", url=redacted(url))

        nc = await nats.connect(
            url,
            name=service,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **credentials,
        )
        bus = cls(
            nc,
            service=service,
            max_deliver=max_deliver,
            ack_wait_s=ack_wait_s,
            retry_delay_s=retry_delay_s,
            consumer_poll_s=consumer_poll_s,
            stream_replicas=stream_replicas,
        )
        try:
            await bus.ensure_streams()
        except BaseException:
            await nc.close()
            raise
        return bus

    async def ensure_streams(self) -> None:
        """Declare the event and dead-letter streams; safe to call from every service at once. They
        get ``stream_replicas`` replicas; an existing stream with fewer is raised to it."""
        for config in (
            StreamConfig(
                name=EVENTS_STREAM,
                subjects=[EVENTS_SUBJECTS],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=120.0,
                max_age=30 * 24 * 3600.0,
                num_replicas=self.stream_replicas,
            ),
            StreamConfig(
                name=DEAD_LETTER_STREAM,
                subjects=[DEAD_LETTER_SUBJECTS],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=120.0,
                num_replicas=self.stream_replicas,
            ),
        ):
            await ensure_stream(self.js, config)

    async def publish(self, event: Message, *, msg_id: str | None = None) -> None:
        """Store ``event`` in JetStream under its subject, with a deterministic message id.

        Raises if JetStream does not confirm; callers ack their input only after this returns.
        ``msg_id`` overrides the message id (a replay of a dead letter is a new message).
        """
        stamp(event)
        subject = SUBJECT_OF[type(event)]
        msg_id = msg_id or message_id(event)
        with tracer.start_as_current_span(
            f"publish {subject}",
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(subject, "publish", msg_id, getattr(event, "meta", None)),
        ):
            headers = {"Nats-Msg-Id": msg_id, TYPE_HEADER: event.DESCRIPTOR.full_name}
            tenant = getattr(getattr(event, "meta", None), "tenant_id", "")
            if tenant:
                headers[TENANT_HEADER] = tenant
            propagate.inject(headers)
            await self.js.publish(subject, event.SerializeToString(), headers=headers, timeout=10)

    def consume(
        self,
        event_type: type[E],
        *,
        durable: str,
        stage: str,
        handler: Handler[E],
        batch: int = 1,
        subject: str | None = None,
        fail_jobs: bool = True,
        controlled: bool = False,
    ) -> None:
        """Run ``handler`` over a durable pull consumer until ``stop()``.

        ``subject`` defaults to the subject of ``event_type``; a wider filter (such as every
        event) decodes each message by its subject. With ``fail_jobs=False`` (observers such
        as the progress projection) a message that keeps failing is only dead-lettered: the
        observer's trouble is not the job's. With ``controlled`` (pipeline stages) the job's
        steering order is checked before the handler runs, at ``Delivery.checkpoint`` and
        before the output is published: a cancelled run ends with ``JobFailed`` (error type
        ``Cancelled``), a paused one with ``JobControlled("requeued")``, and nothing of it shows.
        """
        filter_subject = subject or SUBJECT_OF[event_type]
        task = asyncio.create_task(
            self._consume_loop(filter_subject, durable, stage, handler, batch, fail_jobs, controlled),
            name=f"consume:{durable}",
        )
        self._tasks.append(task)

    async def _consume_loop(
        self,
        filter_subject: str,
        durable: str,
        stage: str,
        handler: Handler[E],
        batch: int,
        fail_jobs: bool,
        controlled: bool,
    ) -> None:
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,  # the bus counts deliveries itself, so that none is dropped silently
            max_ack_pending=max(batch * 4, 16),
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=filter_subject,
        )
        sub = await self.js.pull_subscribe(filter_subject, durable=durable, stream=EVENTS_STREAM, config=config)
        log.info("bus.consuming", durable=durable, subject=filter_subject, batch=batch)
        # every stage's series exist from the start, so a dashboard shows 0 rather than nothing
        for outcome in ("ok", "retried", "failed"):
            MESSAGES.labels(stage, outcome)
        DEAD_LETTERS.labels(stage)
        REDELIVERIES.labels(stage)
        IN_FLIGHT.labels(stage)
        lag = asyncio.create_task(self._poll_lag(durable), name=f"lag:{durable}")
        running: set[asyncio.Task[None]] = set()
        slot_freed = asyncio.Event()
        while not self._stopping.is_set():
            if len(running) >= batch:  # backpressure: at most ``batch`` messages in flight
                slot_freed.clear()
                await slot_freed.wait()
                continue
            try:
                msgs = await sub.fetch(batch - len(running), timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                break
            except nats.errors.Error as exc:
                # JetStream not ready after a server restart (503), or the consumer gone: a loop
                # that ended here would leave the stage silently idle, so bind (or create) again
                log.warning("bus.fetch_failed", durable=durable, error=repr(exc))
                sub = await self._resubscribe(filter_subject, durable, config, sub)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg, stage, handler, fail_jobs, controlled, durable))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _: slot_freed.set())
        lag.cancel()
        if running:
            await asyncio.wait(running)

    async def _poll_lag(self, durable: str) -> None:
        """Keep the consumer gauges of ``durable`` current (JetStream's own counts)."""
        while not self._stopping.is_set():
            try:
                info = await self.js.consumer_info(EVENTS_STREAM, durable)
                CONSUMER_PENDING.labels(durable).set(info.num_pending or 0)
                CONSUMER_ACK_PENDING.labels(durable).set(info.num_ack_pending or 0)
                CONSUMER_REDELIVERED.labels(durable).set(info.num_redelivered or 0)
            except (nats.errors.Error, TimeoutError) as exc:  # NATS away: the gauges keep their last value
                log.debug("bus.lag_unavailable", durable=durable, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.consumer_poll_s)

    async def caught_up(self, durable: str, *, timeout_s: float) -> bool:
        """Wait until ``durable`` has handled every event stored so far (none pending, none
        unacknowledged); ``False`` if that takes longer than ``timeout_s``. A consumer that does not
        exist has nothing to catch up on.

        Two projections of the same events (the gateway's registry, the progress service) each
        lag by their own consumer: this is how one of them reads its own writes.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                info = await self.js.consumer_info(EVENTS_STREAM, durable)
            except NotFoundError:
                return True
            if not info.num_pending and not info.num_ack_pending:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def _resubscribe(
        self, filter_subject: str, durable: str, config: ConsumerConfig, current: JetStreamContext.PullSubscription
    ) -> JetStreamContext.PullSubscription:
        """A pull subscription bound to ``durable`` again, retried each second until it succeeds."""
        with contextlib.suppress(nats.errors.Error):
            await current.unsubscribe()
        while not self._stopping.is_set():
            await asyncio.sleep(1.0)
            try:
                return await self.js.pull_subscribe(
                    filter_subject, durable=durable, stream=EVENTS_STREAM, config=config
                )
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("bus.resubscribe_failed", durable=durable, error=repr(exc))
        return current

    async def _handle(
        self, msg: Msg, stage: str, handler: Handler[E], fail_jobs: bool, controlled: bool, durable: str = ""
    ) -> None:
        md = msg.metadata
        attempt = md.num_delivered
        if attempt > 1:
            REDELIVERIES.labels(stage).inc()
        with process_span(msg, consumer=durable) as span:
            span.set_attribute("messaging.nats.delivery_count", attempt)
            event_type = TYPE_OF_SUBJECT.get(msg.subject)
            if event_type is None:
                await self._dead_letter(msg, stage, f"unknown subject {msg.subject!r}")
                await msg.term()
                return
            try:
                event = event_type.FromString(msg.data)
            except DecodeError as exc:
                await self._dead_letter(msg, stage, f"undecodable {event_type.__name__}: {exc}")
                await msg.term()
                return
            meta = event.meta  # type: ignore[attr-defined]
            mark_job(span, meta)
            structlog.contextvars.bind_contextvars(
                job_id=meta.job_id,
                document_id=meta.document_id,
                tenant_id=meta.tenant_id,
                collection_id=meta.collection_id,
                stage=stage,
            )
            try:
                await self._run(msg, event, stage, handler, attempt, md.sequence.stream, fail_jobs, controlled)
            except (nats.errors.Error, TimeoutError) as exc:
                # acking or publishing failed (NATS away): JetStream redelivers after ack_wait
                log.warning("bus.unsettled", error=str(exc) or type(exc).__name__, attempt=attempt)
            finally:
                structlog.contextvars.unbind_contextvars("job_id", "document_id", "tenant_id", "collection_id", "stage")

    async def _run(
        self,
        msg: Msg,
        event: Message,
        stage: str,
        handler: Handler[E],
        attempt: int,
        seq: int,
        fail_jobs: bool,
        controlled: bool,
    ) -> None:
        if attempt > self.max_deliver:
            reason = f"gave up after {attempt - 1} deliveries (the process handling it did not finish)"
            await self._fail(msg, event, stage, reason, attempt - 1, "Abandoned", True, fail_jobs)
            return
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        IN_FLIGHT.labels(stage).inc()
        started = time.perf_counter()
        checkpoint = _no_checkpoint
        if controlled:
            control = await self.job_control()
            meta = event.meta  # type: ignore[attr-defined]

            async def checkpoint() -> None:
                await control.check(meta)

        try:
            await checkpoint()
            output = await handler(event, Delivery(attempt, seq, msg.subject, checkpoint))  # type: ignore[arg-type]
            if output is not None:
                if not isinstance(output, JobFailed):
                    await checkpoint()
                await self.publish(output)
        except asyncio.CancelledError:
            raise
        except JobStopped as stopped:
            await self._stopped(msg, event, stage, stopped, attempt)
        except Exception as exc:  # the bus is where handler failures are decided
            mapping = mapping_for(exc)
            reason = str(exc) or type(exc).__name__
            if mapping.retry and attempt < self.max_deliver:
                delay = self.retry_delay_s * (2 ** (attempt - 1))
                log.warning("bus.retry", attempt=attempt, delay_s=delay, error=reason, error_type=type(exc).__name__)
                MESSAGES.labels(stage, "retried").inc()
                await msg.nak(delay=delay)
            else:
                log.error("bus.failed", attempt=attempt, error=reason, error_type=type(exc).__name__)
                await self._fail(msg, event, stage, reason, attempt, type(exc).__name__, mapping.retry, fail_jobs)
        else:
            await msg.ack_sync()
            MESSAGES.labels(stage, "ok").inc()
        finally:
            heartbeat.cancel()
            IN_FLIGHT.labels(stage).dec()
            STAGE_DURATION.labels(stage).observe(time.perf_counter() - started)

    async def _stopped(self, msg: Msg, event: Message, stage: str, stopped: JobStopped, attempt: int) -> None:
        """End a steered-away run: cancelled runs fail as ``Cancelled``, paused ones go back to the queue."""
        meta = next_meta(event.meta)  # type: ignore[attr-defined]
        if isinstance(stopped, JobCancelled):
            await self.publish(
                JobFailed(
                    meta=meta,
                    stage=stage,
                    reason=stopped.reason,
                    attempts=attempt,
                    error_type="Cancelled",
                    retryable=False,
                )
            )
        else:
            await self.publish(JobControlled(meta=meta, action="requeued", reason=stopped.reason, control_id=stage))
        log.info("bus.job_stopped", action=stopped.action, reason=stopped.reason)
        MESSAGES.labels(stage, stopped.action).inc()
        await msg.ack_sync()

    async def _fail(
        self,
        msg: Msg,
        event: Message,
        stage: str,
        reason: str,
        attempts: int,
        error_type: str,
        retryable: bool,
        fail_job: bool,
    ) -> None:
        if fail_job:
            failed = JobFailed(
                meta=next_meta(event.meta),  # type: ignore[attr-defined]
                stage=stage,
                reason=reason,
                attempts=attempts,
                error_type=error_type,
                retryable=retryable,
            )
            await self.publish(failed)
        await self._dead_letter(msg, stage, reason)
        FAILURES.labels(stage, error_type).inc()
        MESSAGES.labels(stage, "failed").inc()
        await msg.ack_sync()

    async def _dead_letter(self, msg: Msg, stage: str, reason: str) -> None:
        """Keep the original message, its subject and the reason in the dead-letter stream."""
        md = msg.metadata
        headers = dict(msg.headers or {})
        headers.update(
            {
                "Nats-Msg-Id": f"dlq:{stage}:{md.sequence.stream}",
                "Ragstream-Dlq-Subject": msg.subject,
                "Ragstream-Dlq-Reason": reason[:2000],
                "Ragstream-Dlq-Stage": stage,
                "Ragstream-Dlq-Deliveries": str(md.num_delivered),
            }
        )
        await self.js.publish(f"ragstream.dlq.{stage}", msg.data, headers=headers, timeout=10)
        DEAD_LETTERS.labels(stage).inc()
        log.error("bus.dead_lettered", reason=reason, stream_sequence=md.sequence.stream)

    async def _heartbeat(self, msg: Msg) -> None:
        """Tell JetStream the message is still worked on, so long work is not redelivered."""
        while True:
            await asyncio.sleep(self.ack_wait_s / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def serve(
        self,
        subject: str,
        request_type: type[E],
        handler: Callable[[E], Awaitable[Message]],
        *,
        queue: str,
    ) -> None:
        """Answer NATS requests on ``subject`` (load-balanced over ``queue``); subscribed on return."""

        async def on_request(msg: Msg) -> None:
            ctx = propagate.extract(dict(msg.headers or {}))
            attributes = messaging_attributes(subject, "process", "")
            with tracer.start_as_current_span(
                f"process {subject}", context=ctx, kind=SpanKind.SERVER, attributes=attributes
            ):
                request = request_type.FromString(msg.data)
                reply = await handler(request)
                await msg.respond(reply.SerializeToString())

        await self.nc.subscribe(subject, queue=queue, cb=on_request)
        await self.nc.flush()

    async def request(self, subject: str, request: Message, reply_type: type[R], *, timeout_s: float) -> R:
        """Send a request and decode its reply; raises ``nats.errors.TimeoutError`` if none."""
        attributes = messaging_attributes(subject, "publish", "")
        with tracer.start_as_current_span(f"publish {subject}", kind=SpanKind.CLIENT, attributes=attributes):
            headers: dict[str, str] = {}
            propagate.inject(headers)
            reply = await self.nc.request(subject, request.SerializeToString(), timeout=timeout_s, headers=headers)
            return reply_type.FromString(reply.data)

    async def subscribe(self, event_type: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        """Run ``handler`` on every event of ``event_type`` as it is stored (a plain NATS
        subscription: no ack, no redelivery; for state that lives and dies with the process, such
        as a cache). Each runs in a ``process`` span of the publisher's trace; subscribed on return.
        """

        async def on_message(msg: Msg) -> None:
            with process_span(msg) as span:
                event = event_type.FromString(msg.data)
                meta = getattr(event, "meta", None)
                if meta is not None:
                    mark_job(span, meta)
                await handler(event)

        await self.nc.subscribe(SUBJECT_OF[event_type], cb=on_message)
        await self.nc.flush()

    async def stop(self) -> None:
        """Stop pulling, let in-flight handlers finish, and close the connection."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.ack_wait_s)
        # in-flight work is finished: close at once (drain would wait on the idle pull subscriptions)
        await self.nc.close()
