"""The edge's teacher records to and from relay.v1 messages; no transport here.

    message = span_request_to_proto(request)     # GenerateSpanRequest, token or text mode
    info = info_from_proto(stub.GetInfo(relay_pb2.GetInfoRequest()))

Kept apart from the client so the mapping is tested without a channel.
"""

from __future__ import annotations

from edge_client.errors import ConfigError
from edge_client.teacher.client import SpanQuery, TeacherInfo
from relay_common.chat import ChatMessage
from relay_common.echo import quoted
from relay_proto import relay_pb2

_ROLES = {
    "system": relay_pb2.ROLE_SYSTEM,
    "user": relay_pb2.ROLE_USER,
    "assistant": relay_pb2.ROLE_ASSISTANT,
}


def span_request_to_proto(request: SpanQuery) -> relay_pb2.GenerateSpanRequest:
    """Token mode when `request.token_ids` is set, text mode when `request.messages` is."""
    if (request.token_ids is None) == (request.messages is None):
        raise ValueError("a SpanQuery needs exactly one of token_ids or messages")
    span = relay_pb2.SpanRequest(
        session_id=request.session_id,
        request_id=request.request_id,
        max_tokens=request.max_tokens,
        stop_at_line_end=request.stop_at_line_end,
    )
    if request.token_ids is not None:
        span.tokens.token_ids.extend(request.token_ids)
        span.tokens.tokenizer_fingerprint = request.tokenizer_fingerprint
    else:
        span.text.messages.extend(_message_to_proto(m) for m in request.messages or ())
        span.text.assistant_prefix = request.assistant_prefix
    if request.draft is not None:
        span.draft.token_ids.extend(request.draft.token_ids)
        span.draft.min_prob = request.draft.min_prob
        span.draft.accept_top_token = request.draft.accept_top_token
    # An absent Sampling means greedy: temperature 0 sends nothing (seed and top_p are moot).
    sampling = request.sampling
    if sampling.temperature > 0:
        span.sampling.temperature = sampling.temperature
        span.sampling.top_p = sampling.top_p
        if sampling.seed is not None:
            span.sampling.seed = sampling.seed
    return relay_pb2.GenerateSpanRequest(span=span)


def info_from_proto(response: relay_pb2.GetInfoResponse) -> TeacherInfo:
    return TeacherInfo(
        model_name=response.model_name,
        tokenizer_fingerprint=response.tokenizer_fingerprint,
        max_span_tokens=response.limits.max_span_tokens,
        max_context_tokens=response.limits.max_context_tokens,
    )


def _message_to_proto(message: ChatMessage) -> relay_pb2.ChatMessage:
    role = _ROLES.get(message.role)
    if role is None:
        raise ConfigError(
            f"chat message role {quoted(message.role)} is not one of {', '.join(_ROLES)}; "
            "fix the conversation"
        )
    return relay_pb2.ChatMessage(role=role, content=message.content)
