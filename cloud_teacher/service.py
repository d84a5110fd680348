"""The relay.v1 TeacherService: converts between the wire and the domain, nothing more.

Domain errors propagate as `TeacherError`; `interceptors.py` turns them into status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from cloud_teacher.requests import (
    SpanRequest,
    check_id,
    check_session_header,
    parse_span_request,
)
from cloud_teacher.sessions import SessionUsage
from cloud_teacher.spans import FinishReason, Piece, SpanUsage
from cloud_teacher.teacher import SpanDone, Teacher
from relay_proto import relay_pb2, relay_pb2_grpc

_FINISH_REASONS = {
    FinishReason.LENGTH: relay_pb2.FINISH_REASON_LENGTH,
    FinishReason.END_OF_ANSWER: relay_pb2.FINISH_REASON_END_OF_ANSWER,
}


class TeacherServicer(relay_pb2_grpc.TeacherServiceServicer):
    def __init__(self, teacher: Teacher) -> None:
        self._teacher = teacher

    async def GetInfo(
        self, request: relay_pb2.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetInfoResponse:
        info, limits = self._teacher.info, self._teacher.limits
        return relay_pb2.GetInfoResponse(
            model_name=info.model_name,
            tokenizer_fingerprint=info.tokenizer_fingerprint,
            vocab_size=info.vocab_size,
            limits=relay_pb2.Limits(
                max_span_tokens=limits.max_span_tokens,
                max_context_tokens=limits.max_context_tokens,
            ),
            engine=info.engine,
        )

    async def GenerateSpan(
        self, request: relay_pb2.GenerateSpanRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GenerateSpanResponse:
        done = await self._teacher.generate_span(self._parse(request.span, context))
        return relay_pb2.GenerateSpanResponse(
            token_ids=done.span.token_ids,
            text=done.span.text,
            finish_reason=_FINISH_REASONS[done.span.finish_reason],
            usage=_span_usage(done.span.usage),
            session_usage=_session_usage(done.session),
        )

    async def StreamSpan(
        self, request: relay_pb2.StreamSpanRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[relay_pb2.StreamSpanResponse]:
        async for event in self._teacher.stream_span(self._parse(request.span, context)):
            yield _stream_response(event)

    async def GetSessionUsage(
        self, request: relay_pb2.GetSessionUsageRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetSessionUsageResponse:
        usage = self._teacher.session_usage(check_id("session_id", request.session_id))
        return relay_pb2.GetSessionUsageResponse(usage=_session_usage(usage))

    def _parse(self, span: relay_pb2.SpanRequest, context: grpc.aio.ServicerContext) -> SpanRequest:
        check_session_header(context.invocation_metadata() or (), span.session_id)
        info = self._teacher.info
        return parse_span_request(
            span,
            limits=self._teacher.limits,
            vocab_size=info.vocab_size,
            fingerprint=info.tokenizer_fingerprint,
        )


def _stream_response(event: Piece | SpanDone) -> relay_pb2.StreamSpanResponse:
    if isinstance(event, Piece):
        return relay_pb2.StreamSpanResponse(token_ids=event.token_ids, text=event.text)
    return relay_pb2.StreamSpanResponse(
        text=event.tail_text,
        finish_reason=_FINISH_REASONS[event.span.finish_reason],
        usage=_span_usage(event.span.usage),
        session_usage=_session_usage(event.session),
    )


def _span_usage(usage: SpanUsage) -> relay_pb2.SpanUsage:
    return relay_pb2.SpanUsage(
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        generated_tokens=usage.generated_tokens,
        queue_time_ms=usage.queue_time_ms,
        compute_time_ms=usage.compute_time_ms,
        replayed=usage.replayed,
    )


def _session_usage(usage: SessionUsage) -> relay_pb2.SessionUsage:
    return relay_pb2.SessionUsage(
        session_id=usage.session_id,
        spans=usage.spans,
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        generated_tokens=usage.generated_tokens,
    )
