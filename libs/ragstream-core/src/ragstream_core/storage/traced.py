"""One span per object-store call: ``objects <operation>`` with the store and the key."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind

P = ParamSpec("P")
T = TypeVar("T")

tracer = trace.get_tracer("ragstream.storage")


def traced(
    operation: str, store: str
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Run the decorated method (``self, key, ...``) in a CLIENT span ``objects <operation>``."""

    def decorate(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            key: Any = args[1] if len(args) > 1 else kwargs.get("key", "")
            with tracer.start_as_current_span(
                f"objects {operation}",
                kind=SpanKind.CLIENT,
                attributes={"ragstream.object_store": store, "ragstream.object_key": str(key)},
            ):
                return await method(*args, **kwargs)

        return call

    return decorate
