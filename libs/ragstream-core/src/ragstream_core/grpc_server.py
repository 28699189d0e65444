"""gRPC servers of the services: error mapping from ``ERROR_TABLE``, health and reflection.

``start_grpc_server`` starts a ``grpc.aio`` server with the given servicers, the standard
health service (every named service SERVING) and server reflection. Domain errors raised by a
servicer become the gRPC status of ``ERROR_TABLE`` with the error's message as details.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ragstream_core.errors import RagstreamError, mapping_for

Registrar = Callable[[grpc.aio.Server], None]


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except RagstreamError as exc:
            await context.abort(mapping_for(exc).grpc_code, str(exc))

    return call


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except RagstreamError as exc:
            await context.abort(mapping_for(exc).grpc_code, str(exc))

    return call


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Turns ``RagstreamError`` into the gRPC status its ``ERROR_TABLE`` row names."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),  # type: ignore[arg-type]  # aio handlers are async
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:  # client streaming: the request is an iterator, the answer one message
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


async def start_grpc_server(
    registrars: Iterable[Registrar], *, service_names: Iterable[str], host: str, port: int
) -> grpc.aio.Server:
    """A started server with the servicers, health (SERVING) and reflection."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    for register in registrars:
        register(server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(service_names)
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server


def tenant_from(context: grpc.aio.ServicerContext[Any, Any], default: str) -> str:
    """The caller's tenant from the ``x-tenant-id`` metadata, else ``default``."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-tenant-id":
            return str(value)
    return default
