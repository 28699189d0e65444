"""The gRPC side of ``Authenticator``: an interceptor that authorizes every call.

The credential is the ``authorization`` metadata (``Bearer <key>``); in ``open`` mode the tenant
is the ``x-tenant-id`` metadata. Health checks and reflection are public. A method of a
ragstream service that ``roles`` does not name is refused: a new RPC cannot be left open by
forgetting it. Servicers read the caller with ``current_principal()``. A method named in
``changes`` that ends in a refusal or failure is written to the audit log as REST's refused
changes are (``ragstream_core.auth.audit``).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ragstream_core.auth.audit import audited_status, record_refused_change
from ragstream_core.auth.authenticator import PUBLIC, Authenticator
from ragstream_core.auth.principal import Principal, Role
from ragstream_core.auth.ratelimit import Action
from ragstream_core.errors import Forbidden, RagstreamError, mapping_for

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("ragstream_principal", default=None)
PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def current_principal() -> Principal | None:
    """The caller of the gRPC call being served (None outside an authorized call)."""
    return _PRINCIPAL.get()


def _metadata(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return str(value)
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authorizes each call of a ragstream service with the role ``roles`` names for its method
    (full name, ``/ragstream.v1.IngestService/Upload``), and charges the rate limit of the action
    ``rates`` names for it (``RESOURCE_EXHAUSTED`` with ``retry-after`` when over it); the refusals
    and failures of the methods in ``changes`` are audited."""

    def __init__(
        self,
        authenticator: Authenticator,
        roles: dict[str, Role],
        *,
        rates: dict[str, Action] | None = None,
        changes: frozenset[str] = frozenset(),
    ) -> None:
        self.authenticator = authenticator
        self.roles = roles
        self.rates = dict(rates or {})
        self.changes = changes

    async def _authorize(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        needed = self.roles.get(method)
        if needed is None:
            raise Forbidden(f"{method} has no role assigned: it is refused until it gets one")
        principal = await self.authenticator.authorize(
            method="RPC",
            route=method,
            authorization=_metadata(context, "authorization"),
            tenant_header=_metadata(context, "x-tenant-id"),
            actor_header=_metadata(context, "x-actor"),
            needed=needed,
            action=self.rates.get(method),
        )
        _PRINCIPAL.set(principal)

    def _unary(self, behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await self._authorize(method, context)
            try:
                return await behavior(request, context)
            except Exception as exc:
                if method in self.changes:
                    await self._audit(method, exc)
                raise

        return call

    async def _audit(self, method: str, error: Exception) -> None:
        """Record a change's refusal or failure: the REST status it maps to and the error's type only."""
        principal = current_principal()
        status = mapping_for(error).http_status
        if principal is None or not audited_status(status):
            return
        reason = type(error).__name__ if isinstance(error, RagstreamError) else "InternalError"
        await record_refused_change(
            self.authenticator, principal, f"RPC {method}", target=method, status=status, reason=reason
        )

    def _stream(self, behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            await self._authorize(method, context)
            async for item in behavior(request, context):
                yield item

        return call

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),  # type: ignore[arg-type]  # aio handlers are async
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        raise Forbidden(f"{method}: bidirectional streams are not served")


__all__ = ["PUBLIC", "AuthInterceptor", "current_principal"]
