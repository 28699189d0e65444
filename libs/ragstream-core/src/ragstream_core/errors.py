"""Domain errors of ragstream and what each means at every boundary.

Hierarchy::

    RagstreamError                      base; retryable on the bus, 500 over HTTP
    ├── InvalidInput                    400, never retried
    │   ├── EmptyUpload                 400
    │   ├── UploadTooLarge              413
    │   ├── UnsupportedMediaType        415
    │   └── ContentMismatch             422 (stored bytes differ from what was declared)
    ├── NotFound                        404
    │   └── Expired                     410 (existed, but its time ran out)
    ├── Unauthenticated                 401 (no API key, or one unknown, expired or revoked)
    ├── Forbidden                       403 (a wrong or used one-time token; a role too low)
    │   └── OriginNotAllowed            403 (a browser page whose origin the key's tenant does not allow)
    ├── Conflict                        409 (with ``details``: what it conflicts with)
    ├── SecretUnavailable               409 (a stored secret: no key configured to seal it, or
    │                                        none of the configured keys opens it)
    ├── RateLimited                     429 + Retry-After; gRPC RESOURCE_EXHAUSTED + retry-after
    ├── QuotaExceeded                   403 ``quota_exceeded``; gRPC RESOURCE_EXHAUSTED
    ├── UnreadableDocument              the parser cannot read the content; job fails at once
    └── DependencyUnavailable           503; retried on the bus

``ERROR_TABLE`` maps each class to its HTTP status, gRPC code and whether the bus retries it;
the FastAPI handler, the gRPC adapters and the bus use that table and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc


class RagstreamError(Exception):
    """Base of every domain error. Unknown subclasses are retried on the bus.

    ``details`` are machine-readable facts for the client (the id a name collides with, say),
    returned beside the message.
    """

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


class InvalidInput(RagstreamError):
    """The request is malformed. Never retried."""


class EmptyUpload(InvalidInput):
    """The uploaded file has no bytes."""


class UploadTooLarge(InvalidInput):
    """The upload exceeds the configured size limit."""


class UnsupportedMediaType(InvalidInput):
    """The upload's type cannot be parsed, or its content contradicts its name."""


class ContentMismatch(InvalidInput):
    """The received bytes contradict what the client declared (size, SHA-256)."""


class UnprocessableInput(InvalidInput):
    """Well-formed, but a value is outside what is accepted (say, too many tags). Never retried."""


class NotFound(RagstreamError):
    """The named resource does not exist (or is not visible to the caller)."""


class Expired(NotFound):
    """The named resource existed but expired; a new one must be made."""


class Forbidden(RagstreamError):
    """The request's credential (a one-time token) is wrong or already used, or its role is too low."""


class OriginNotAllowed(Forbidden):
    """A browser page of an origin the caller's tenant does not allow sent a credentialed request."""


class Unauthenticated(RagstreamError):
    """No credential, or one that is not (or no longer) valid; answered with ``WWW-Authenticate``."""


class Conflict(RagstreamError):
    """The request contradicts the current state (a running job, a taken name). Never retried."""


class SecretUnavailable(RagstreamError):
    """A tenant secret cannot be encrypted (no key is configured) or decrypted (no configured key
    encrypted it). The operator's to fix (``RAGSTREAM_SECRET_KEYS``) or the owner's (set it
    again); never retried."""


class RateLimited(RagstreamError):
    """Too many requests of one kind (upload, chat) by a key or a tenant in the window.

    ``details`` name the limit (``limit``: key or tenant, ``action``), its rate and
    ``retry_after_s`` (whole seconds, at least 1): the ``Retry-After`` header (gRPC: the
    ``retry-after`` trailing metadata).
    """


class QuotaExceeded(RagstreamError):
    """Storing the upload would take the tenant over its quota (bytes or documents); nothing was
    stored. ``details``: ``quota``, ``usage``, ``limit``. Answered 403 ``quota_exceeded`` as
    storage APIs do (Google Drive's ``storageQuotaExceeded``): retrying does not help, freeing or
    raising the quota does."""


class UnreadableDocument(RagstreamError):
    """The content cannot be parsed into text. Never retried: the job fails with the reason."""


class DependencyUnavailable(RagstreamError):
    """A server this service needs is unreachable. Retried."""


@dataclass(frozen=True)
class ErrorMapping:
    http_status: int
    grpc_code: grpc.StatusCode
    retry: bool


ERROR_TABLE: dict[type[RagstreamError], ErrorMapping] = {
    EmptyUpload: ErrorMapping(400, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    UploadTooLarge: ErrorMapping(413, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    UnsupportedMediaType: ErrorMapping(415, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    ContentMismatch: ErrorMapping(422, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    InvalidInput: ErrorMapping(400, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    UnprocessableInput: ErrorMapping(422, grpc.StatusCode.INVALID_ARGUMENT, retry=False),
    Expired: ErrorMapping(410, grpc.StatusCode.NOT_FOUND, retry=False),
    NotFound: ErrorMapping(404, grpc.StatusCode.NOT_FOUND, retry=False),
    Unauthenticated: ErrorMapping(401, grpc.StatusCode.UNAUTHENTICATED, retry=False),
    OriginNotAllowed: ErrorMapping(403, grpc.StatusCode.PERMISSION_DENIED, retry=False),
    Forbidden: ErrorMapping(403, grpc.StatusCode.PERMISSION_DENIED, retry=False),
    Conflict: ErrorMapping(409, grpc.StatusCode.FAILED_PRECONDITION, retry=False),
    SecretUnavailable: ErrorMapping(409, grpc.StatusCode.FAILED_PRECONDITION, retry=False),
    RateLimited: ErrorMapping(429, grpc.StatusCode.RESOURCE_EXHAUSTED, retry=True),
    QuotaExceeded: ErrorMapping(403, grpc.StatusCode.RESOURCE_EXHAUSTED, retry=False),
    UnreadableDocument: ErrorMapping(422, grpc.StatusCode.FAILED_PRECONDITION, retry=False),
    DependencyUnavailable: ErrorMapping(503, grpc.StatusCode.UNAVAILABLE, retry=True),
    RagstreamError: ErrorMapping(500, grpc.StatusCode.INTERNAL, retry=True),
}


def mapping_for(error: BaseException) -> ErrorMapping:
    """The mapping of the closest class of ``error`` in ``ERROR_TABLE``.

    Exceptions that are not ``RagstreamError`` (bugs, timeouts of libraries) are treated like
    the base class: HTTP 500 and retried on the bus, up to the delivery limit.
    """
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[RagstreamError]


def retry_after_s(error: BaseException) -> int | None:
    """Whole seconds the client should wait before retrying (``RateLimited``), else None."""
    value = getattr(error, "details", {}).get("retry_after_s")
    return int(value) if isinstance(value, int) else None
