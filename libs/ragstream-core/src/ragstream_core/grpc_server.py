"""gRPC servers of the services: error mapping from ``ERROR_TABLE``, health and reflection.

``start_grpc_server`` starts a ``grpc.aio`` server with the given servicers, the standard
health service (every named service SERVING) and server reflection. Domain errors raised by a
servicer become the gRPC status of ``ERROR_TABLE`` with the error's message as details. Every
call is timed in ``ragstream_grpc_request_duration_seconds`` by full method name and status code.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Histogram

from ragstream_core.auth.grpc_calls import current_principal
from ragstream_core.errors import RagstreamError, mapping_for, retry_after_s

Registrar = Callable[[grpc.aio.Server], None]

GRPC_DURATION = Histogram(
    "ragstream_grpc_request_duration_seconds",
    "Time to answer a gRPC call (a stream: until its end), by full method name and status code.",
    ["method", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _code_of(context: grpc.aio.ServicerContext[Any, Any], failed: BaseException | None) -> str:
    if isinstance(failed, RagstreamError):
        return str(mapping_for(failed).grpc_code.name)
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "UNKNOWN" if failed is not None else "OK"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: RagstreamError) -> None:
    """End the call with the error's status; a ``RateLimited`` one says when to retry (``retry-after``)."""
    wait = retry_after_s(error)
    trailing = (("retry-after", str(wait)),) if wait is not None else ()
    await context.abort(mapping_for(error).grpc_code, str(error), trailing_metadata=trailing)


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        failed: BaseException | None = None
        try:
            return await behavior(request, context)
        except RagstreamError as exc:
            failed = exc
            await _abort(context, exc)
        except BaseException as exc:
            failed = failed or exc
            raise
        finally:
            GRPC_DURATION.labels(method, _code_of(context, failed)).observe(time.perf_counter() - started)

    return call


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.perf_counter()
        failed: BaseException | None = None
        try:
            async for item in behavior(request, context):
                yield item
        except RagstreamError as exc:
            failed = exc
            await _abort(context, exc)
        except BaseException as exc:
            failed = failed or exc
            raise
        finally:
            GRPC_DURATION.labels(method, _code_of(context, failed)).observe(time.perf_counter() - started)

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
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),  # type: ignore[arg-type]  # aio handlers are async
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:  # client streaming: the request is an iterator, the answer one message
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


async def start_grpc_server(
    registrars: Iterable[Registrar],
    *,
    service_names: Iterable[str],
    host: str,
    port: int,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
) -> grpc.aio.Server:
    """A started server with the servicers, health (SERVING) and reflection; ``interceptors``
    (the ``AuthInterceptor``) run inside the error mapping, so their refusals get their status."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor(), *interceptors])
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
    """The caller's tenant: the authorized principal's (``AuthInterceptor``); without one (a server
    started without it: tests of other concerns) the ``x-tenant-id`` metadata, else ``default``."""
    principal = current_principal()
    if principal is not None:
        return principal.tenant_id
    for key, value in context.invocation_metadata() or ():
        if key == "x-tenant-id":
            return str(value)
    return default
