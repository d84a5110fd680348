"""The relay.v1 TeacherService: converts between the wire and the domain, nothing more.

Domain errors propagate as `TeacherError`; `interceptors.py` turns them into status codes and
sets `current_caller`, whose tenant scopes every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from cloud_teacher.access.keys import current_caller
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
    FinishReason.LINE_END: relay_pb2.FINISH_REASON_LINE_END,
    FinishReason.DRAFT_ACCEPTED: relay_pb2.FINISH_REASON_DRAFT_ACCEPTED,
}


class TeacherServicer(relay_pb2_grpc.TeacherServiceServicer):
    def __init__(self, teacher: Teacher, *, limits: relay_pb2.Limits) -> None:
        self._teacher = teacher
        self._limits = limits  # as published: the request limits and the per-key ones

    async def GetInfo(
        self, request: relay_pb2.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetInfoResponse:
        info, window = self._teacher.info, self._teacher.replay_window
        return relay_pb2.GetInfoResponse(
            model_name=info.model_name,
            tokenizer_fingerprint=info.tokenizer_fingerprint,
            vocab_size=info.vocab_size,
            limits=self._limits,
            engine=info.engine,
            replay_window=relay_pb2.ReplayWindow(
                requests_per_session=window.per_session, seconds=window.seconds
            ),
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
            accepted_draft_tokens=done.span.accepted_draft_tokens,
        )

    async def StreamSpan(
        self, request: relay_pb2.StreamSpanRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[relay_pb2.StreamSpanResponse]:
        async for event in self._teacher.stream_span(self._parse(request.span, context)):
            yield _stream_response(event)

    async def GetSessionUsage(
        self, request: relay_pb2.GetSessionUsageRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetSessionUsageResponse:
        session_id = check_id("session_id", request.session_id)
        usage = self._teacher.session_usage(current_caller.get().tenant, session_id)
        return relay_pb2.GetSessionUsageResponse(usage=_session_usage(usage))

    async def GetKeyUsage(
        self, request: relay_pb2.GetKeyUsageRequest, context: grpc.aio.ServicerContext
    ) -> relay_pb2.GetKeyUsageResponse:
        caller = current_caller.get()
        totals = self._teacher.tenant_usage(caller.tenant)
        return relay_pb2.GetKeyUsageResponse(
            usage=relay_pb2.KeyUsage(
                key_name=caller.name,
                spans=totals.spans,
                prompt_tokens=totals.prompt_tokens,
                cached_prompt_tokens=totals.cached_prompt_tokens,
                generated_tokens=totals.generated_tokens,
                draft_tokens=totals.draft_tokens,
            )
        )

    def _parse(self, span: relay_pb2.SpanRequest, context: grpc.aio.ServicerContext) -> SpanRequest:
        check_session_header(context.invocation_metadata() or (), span.session_id)
        info = self._teacher.info
        return parse_span_request(
            span,
            limits=self._teacher.limits,
            vocab_size=info.vocab_size,
            fingerprint=info.tokenizer_fingerprint,
            tenant=current_caller.get().tenant,
        )


def _stream_response(event: Piece | SpanDone) -> relay_pb2.StreamSpanResponse:
    if isinstance(event, Piece):
        return relay_pb2.StreamSpanResponse(token_ids=event.token_ids, text=event.text)
    return relay_pb2.StreamSpanResponse(
        text=event.tail_text,
        finish_reason=_FINISH_REASONS[event.span.finish_reason],
        usage=_span_usage(event.span.usage),
        session_usage=_session_usage(event.session),
        accepted_draft_tokens=event.span.accepted_draft_tokens,
    )


def _span_usage(usage: SpanUsage) -> relay_pb2.SpanUsage:
    return relay_pb2.SpanUsage(
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        generated_tokens=usage.generated_tokens,
        queue_time_ms=usage.queue_time_ms,
        compute_time_ms=usage.compute_time_ms,
        replayed=usage.replayed,
        draft_tokens=usage.draft_tokens,
    )


def _session_usage(usage: SessionUsage) -> relay_pb2.SessionUsage:
    return relay_pb2.SessionUsage(
        session_id=usage.session_id,
        spans=usage.spans,
        prompt_tokens=usage.prompt_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        generated_tokens=usage.generated_tokens,
        draft_tokens=usage.draft_tokens,
    )
