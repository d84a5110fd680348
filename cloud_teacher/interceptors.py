"""Server interceptors. The one place domain errors become gRPC status codes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from cloud_teacher.errors import (
    EngineDeadError,
    InvalidRequestError,
    OverloadedError,
    SessionNotFoundError,
    TeacherError,
)
from cloud_teacher.handlers import wrap_handler

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/relay.v1."

# First match wins; a TeacherError not listed is our bug, hence INTERNAL.
STATUS_BY_ERROR: tuple[tuple[type[TeacherError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (SessionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (EngineDeadError, grpc.StatusCode.UNAVAILABLE),
)

# The client's mistakes are routine; overload is worth a look; the rest needs someone.
_LOG_LEVELS = {
    grpc.StatusCode.INVALID_ARGUMENT: logging.INFO,
    grpc.StatusCode.NOT_FOUND: logging.INFO,
    grpc.StatusCode.RESOURCE_EXHAUSTED: logging.WARNING,
}


def status_for(error: TeacherError) -> grpc.StatusCode:
    for kind, code in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


class ErrorStatusInterceptor(grpc.aio.ServerInterceptor):
    """Aborts relay.v1 calls that raise `TeacherError` with its status code and message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(SERVICE_PREFIX):
            return handler
        return wrap_handler(handler, unary=_unary, stream=_stream)


def _unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except TeacherError as exc:
            await _abort(context, exc)

    return unary


def _stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except TeacherError as exc:
            await _abort(context, exc)

    return stream


async def _abort(context: grpc.aio.ServicerContext, error: TeacherError) -> None:
    code = status_for(error)
    log.log(_LOG_LEVELS.get(code, logging.ERROR), "%s: %s", code.name, error)
    await context.abort(code, str(error))
