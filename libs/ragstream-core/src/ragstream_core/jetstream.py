"""Creating JetStream streams with the configured replica count (``RAGSTREAM_STREAM_REPLICAS``).

Every service declares the streams it uses when it starts; whichever comes first creates them.
A stream that exists with fewer replicas than configured is raised in place (JetStream moves a
stream from R1 to R3 without losing messages); one with more is left alone. A replica count the
server cannot give (more than the servers of the JetStream cluster; a single server gives 1)
fails the start with ``StreamSetupError`` saying so, never a stream with fewer copies than asked.
"""

from __future__ import annotations

import dataclasses

import structlog
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from nats.js.errors import APIError, NotFoundError

log = structlog.get_logger(__name__)


class StreamSetupError(RuntimeError):
    """JetStream refused a stream as configured (typically: more replicas than servers)."""


def refused_error(name: str, replicas: int, error: APIError) -> StreamSetupError:
    return StreamSetupError(
        f"JetStream refused stream {name} with {replicas} replica(s): {error.description or error}."
        " RAGSTREAM_STREAM_REPLICAS must be at most the number of servers of the JetStream cluster"
        " (1 for a single nats-server, 3 for the production overlay's cluster)"
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    """The stream ``config`` names: created with its ``num_replicas`` if missing (idempotent when
    several services race), raised to them if it has fewer."""
    name = config.name or ""
    replicas = config.num_replicas or 1
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        try:
            return await js.add_stream(config)
        except APIError as exc:
            try:  # another service created it first, or the configuration was refused
                info = await js.stream_info(name)
            except NotFoundError:
                raise refused_error(name, replicas, exc) from exc
    current = info.config.num_replicas or 1
    if current >= replicas:
        return info
    try:
        raised = await js.update_stream(dataclasses.replace(info.config, num_replicas=replicas))
    except APIError as exc:
        raise refused_error(name, replicas, exc) from exc
    log.info("bus.stream_replicas_raised", stream=name, replicas=replicas, previous=current)
    return raised
