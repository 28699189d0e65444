"""Who may do what on NATS: one user per service, with the subjects its role needs.

NATS is the services' internal bus, so its users are the services, not people. Each service
publishes only the events its stage produces (the gateway: every event, since it replays dead
letters onto every stage's subject, and the job-control bucket), and calls only the requests
its role makes: chat searches; the gateway asks for the index's inventory and removes points.
Only the embedder may answer requests (``ragstream.rpc.>``), so no other service can pose as
the index. No service may delete or purge a stream, delete a message or a consumer, or
snapshot or restore a stream: that is the ``operator``'s (backup, restore, rebuild, tests),
which has every right. A parser compromised by a hostile document therefore cannot forge an
``index.updated``, answer chat's searches, delete points or destroy the event history.

``nats_config`` renders the ``authorization`` block of a nats-server configuration; the
devstack writes it with generated passwords, the Kubernetes manifests with ``$VARIABLES`` the
server reads from a Secret (``tests/deploy`` checks that the two agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ragstream_core.events import (
    DEAD_LETTER_SUBJECTS,
    DELETE_POINTS_SUBJECT,
    EVENTS_SUBJECTS,
    INVENTORY_SUBJECT,
    SEARCH_SUBJECT,
)

__all__ = ["OPERATOR", "SERVICE_USERS", "NatsUser", "nats_config", "password_variable", "redacted"]

#: the user with every right: operators' tools (backup, restore, rebuild-progress) and tests
OPERATOR = "operator"
_CONTROL = "$KV.RAGSTREAM_CONTROL.>"  # the job-control bucket (``ragstream_core.control``)
_FAILED = "ragstream.events.job.failed"  # a poison message ends as a failed job (every consumer)
_PROGRESS = "ragstream.events.job.progress"
#: what every service needs of JetStream: its API (less what destroys data), acks, flow control
_JETSTREAM = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>")
_DESTRUCTIVE = (
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.ACCOUNT.PURGE.>",
)
#: replies to JetStream and to requests arrive on inboxes; chat follows the index's events
_SUBSCRIBE = ("_INBOX.>", EVENTS_SUBJECTS)
_RPC = "ragstream.rpc.>"


@dataclass(frozen=True)
class NatsUser:
    """A service's rights beyond JetStream's own subjects (every service has those)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...] = _SUBSCRIBE
    #: answers requests (publishes to the reply subjects of requests it received, and no other inbox)
    responds: bool = False


SERVICE_USERS: dict[str, NatsUser] = {
    "ingest-gateway": NatsUser(
        publish=(EVENTS_SUBJECTS, DEAD_LETTER_SUBJECTS, _CONTROL, INVENTORY_SUBJECT, DELETE_POINTS_SUBJECT)
    ),
    "parser": NatsUser(publish=("ragstream.events.doc.parsed", _PROGRESS, _FAILED, DEAD_LETTER_SUBJECTS)),
    "embedder": NatsUser(
        publish=(
            "ragstream.events.index.updated",
            "ragstream.events.index.tagged",
            _PROGRESS,
            _FAILED,
            DEAD_LETTER_SUBJECTS,
        ),
        subscribe=(*_SUBSCRIBE, _RPC),
        responds=True,
    ),
    "chat": NatsUser(publish=(SEARCH_SUBJECT, _FAILED, DEAD_LETTER_SUBJECTS)),
    "progress": NatsUser(publish=(_FAILED, DEAD_LETTER_SUBJECTS)),
}


def _quoted(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def nats_config(passwords: dict[str, str]) -> str:
    """The ``authorization`` block for ``passwords`` (user → password, or ``$VARIABLE`` for the
    server to read from its environment): every service of ``SERVICE_USERS`` and the operator."""

    def secret(user: str) -> str:
        value = passwords[user]
        return value if value.startswith("$") else json.dumps(value)

    lines = ["authorization {", "  users = ["]
    lines.append(f'    {{user: "{OPERATOR}", password: {secret(OPERATOR)}}}')
    for name, user in SERVICE_USERS.items():
        lines += [
            "    {",
            f'      user: "{name}", password: {secret(name)}',
            "      permissions: {",
            f"        publish: {{allow: {_quoted([*_JETSTREAM, *user.publish])}, deny: {_quoted(_DESTRUCTIVE)}}}",
            f"        subscribe: {{allow: {_quoted(user.subscribe)}}}",
            *(["        allow_responses: true"] if user.responds else []),
            "      }",
            "    }",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def password_variable(user: str) -> str:
    """The environment variable holding ``user``'s password in Kubernetes (the NATS server reads
    it as ``$NATS_PASSWORD_PARSER``; the service as ``RAGSTREAM_NATS_PASSWORD``)."""
    return "NATS_PASSWORD_" + user.upper().replace("-", "_")


def redacted(url: str) -> str:
    """``url`` without its password (for logs): ``nats://parser:***@host:4222``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
