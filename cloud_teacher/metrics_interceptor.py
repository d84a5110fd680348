"""Feeds `TeacherMetrics` from the relay.v1 calls as they pass, without touching the handlers.

It sits inside `ErrorStatusInterceptor`: it sees a `TeacherError` before that interceptor sends
its status, and names the code with the same mapping (`status_for`). Everything is counted
before the client gets its answer, so a scrape right after a call sees it.
Each call's labels come from `CALL_LABELS`: to add one to every per-call metric (e.g. the API
key's name), add its name and how to read it from the call's context there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc

from cloud_teacher.errors import TeacherError
from cloud_teacher.handlers import StreamBehavior, UnaryBehavior, wrap_handler
from cloud_teacher.interceptors import SERVICE_PREFIX, status_for
from cloud_teacher.metrics import Labels, TeacherMetrics
from relay_proto import relay_pb2

CALL_LABELS: Mapping[str, Callable[[grpc.aio.ServicerContext], str]] = {}

_SPAN_METHODS = frozenset({"GenerateSpan", "StreamSpan"})


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: TeacherMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        full_name = handler_call_details.method
        if handler is None or not full_name.startswith(SERVICE_PREFIX):
            return handler
        method = full_name.rsplit("/", 1)[-1]
        return wrap_handler(
            handler,
            unary=lambda behavior: self._unary(behavior, method),
            stream=lambda behavior: self._stream(behavior, method),
        )

    def _unary(self, behavior: UnaryBehavior, method: str) -> UnaryBehavior:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            labels = _labels(context)
            self._started(method, labels)
            try:
                response = await behavior(request, context)
            except BaseException as exc:
                self._failed(method, labels, context, exc)
                raise
            else:
                self._finished(method, labels, response)
            finally:
                self._ended(method, labels)
            return response

        return unary

    def _stream(self, behavior: StreamBehavior, method: str) -> StreamBehavior:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            labels = _labels(context)
            self._started(method, labels)
            ended = False
            try:
                async for response in behavior(request, context):
                    if method in _SPAN_METHODS and response.finish_reason:
                        # The last piece: counted before the client sees it.
                        self._finished(method, labels, response)
                        self._ended(method, labels)
                        ended = True
                    yield response
            except BaseException as exc:
                if not ended:
                    self._failed(method, labels, context, exc)
                raise
            finally:
                if not ended:
                    self._ended(method, labels)

        return stream

    def _started(self, method: str, labels: Labels) -> None:
        if method in _SPAN_METHODS:
            self._metrics.span_started(labels)

    def _ended(self, method: str, labels: Labels) -> None:
        if method in _SPAN_METHODS:
            self._metrics.span_ended(labels)

    def _finished(self, method: str, labels: Labels, response: Any) -> None:
        """A span response (GenerateSpan's, or StreamSpan's last piece) carries the usage."""
        if method not in _SPAN_METHODS:
            return
        reason = relay_pb2.FinishReason.Name(response.finish_reason)
        self._metrics.span_finished(
            labels,
            finish_reason=reason.removeprefix("FINISH_REASON_").lower(),
            usage=response.usage,
        )

    def _failed(
        self,
        method: str,
        labels: Labels,
        context: grpc.aio.ServicerContext,
        exc: BaseException,
    ) -> None:
        self._metrics.call_failed(labels, method=method, code=_status_name(context, exc))


def _labels(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {name: read(context) for name, read in CALL_LABELS.items()}


def _status_name(context: grpc.aio.ServicerContext, exc: BaseException) -> str:
    """The status the call ends with."""
    if isinstance(exc, TeacherError):
        return status_for(exc).name
    code = context.code()  # set when the handler aborted the call itself
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED.name
    return grpc.StatusCode.UNKNOWN.name
