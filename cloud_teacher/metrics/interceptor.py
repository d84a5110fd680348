"""Feeds `TeacherMetrics` from the relay.v1 calls as they pass, without touching the handlers.

It sits inside `ErrorStatusInterceptor`: it sees a `TeacherError` before that interceptor sends
its status, and names the code with the same mapping (`status_for`). It also sits inside
`CallerInterceptor`, so every call is labelled with its API key's name ("" without keys). The
calls `CallerInterceptor` refuses (no valid key, the per-key call cap) never get here; it hands
them to `count_refusal`, which counts them as errors like any other (key "" when no key was
valid). Everything is counted before the client gets its answer, so a scrape right after a
call sees it.
Each call's labels come from `CALL_LABELS`: to add one to every per-call metric, add its name
and how to read it from the call there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc

from cloud_teacher.access.keys import current_caller
from cloud_teacher.errors import TeacherError
from cloud_teacher.metrics.collectors import Labels, TeacherMetrics
from cloud_teacher.rpc.interceptors import RelayInterceptor, Stream, Unary, status_for
from relay_proto import relay_pb2

CALL_LABELS: Mapping[str, Callable[[grpc.aio.ServicerContext], str]] = {
    "key": lambda context: current_caller.get().name,
}

_SPAN_METHODS = frozenset({"GenerateSpan", "StreamSpan"})


class MetricsInterceptor(RelayInterceptor):
    def __init__(self, metrics: TeacherMetrics) -> None:
        self._metrics = metrics

    def wrap_unary(self, behavior: Unary, details: grpc.HandlerCallDetails) -> Unary:
        method = _method_name(details)

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

    def wrap_stream(self, behavior: Stream, details: grpc.HandlerCallDetails) -> Stream:
        method = _method_name(details)

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

    def count_refusal(
        self,
        details: grpc.HandlerCallDetails,
        context: grpc.aio.ServicerContext,
        refusal: TeacherError,
    ) -> None:
        """A call refused before it got here (`CallerInterceptor`'s `on_refused`)."""
        method, labels = _method_name(details), _labels(context)
        self._started(method, labels)
        self._failed(method, labels, context, refusal)
        self._ended(method, labels)

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
            accepted_draft_tokens=response.accepted_draft_tokens,
        )

    def _failed(
        self,
        method: str,
        labels: Labels,
        context: grpc.aio.ServicerContext,
        exc: BaseException,
    ) -> None:
        self._metrics.call_failed(labels, method=method, code=_status_name(context, exc))


def _method_name(details: grpc.HandlerCallDetails) -> str:
    return details.method.rsplit("/", 1)[-1]


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
