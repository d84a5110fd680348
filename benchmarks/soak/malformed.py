"""Malformed requests for the soak: each way a client gets a span request wrong, and the status
the teacher must answer it with (INVALID_ARGUMENT, or UNAUTHENTICATED without a key).

    bad = malformed_call("out_of_vocabulary", good=span, info=info, draw=random.Random(1))
    bad.span, bad.metadata_change, bad.raw, bad.expected
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

from relay_proto import relay_pb2


@dataclass(frozen=True, slots=True)
class MalformedCall:
    """What to send: `span` (or `raw` bytes instead of a message), with the session header
    replaced by `header` when set and the API key left out when `no_key`."""

    span: relay_pb2.SpanRequest | None
    expected: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    raw: bytes | None = None
    header: str | None = None
    no_key: bool = False


def malformed_call(
    malformation: str,
    *,
    good: relay_pb2.SpanRequest,
    info: relay_pb2.GetInfoResponse,
    draw: random.Random,
    answered_request_id: str | None,
) -> MalformedCall:
    """`good` made wrong in the way `malformation` names (scenarios.MALFORMATIONS)."""
    span = relay_pb2.SpanRequest()
    span.CopyFrom(good)
    limits = info.limits
    match malformation:
        case "empty_tokens":
            span.tokens.CopyFrom(
                relay_pb2.TokenContext(tokenizer_fingerprint=info.tokenizer_fingerprint)
            )
        case "wrong_fingerprint":
            _token_mode(span, info)
            span.tokens.tokenizer_fingerprint = f"sha256:{draw.randrange(1 << 256):064x}"
        case "huge_fingerprint":  # echoed whole, it would pass the client's metadata limit
            _token_mode(span, info)
            span.tokens.tokenizer_fingerprint = "f" * draw.randint(10_000, 1 << 20)
        case "out_of_vocabulary":
            _token_mode(span, info)
            span.tokens.token_ids[-1] = info.vocab_size + draw.randint(0, 1000)
        case "context_too_long":
            _token_mode(span, info)
            extra = limits.max_context_tokens + draw.randint(1, 50) - len(span.tokens.token_ids)
            span.tokens.token_ids.extend([1] * extra)
        case "max_tokens_zero":
            span.max_tokens = 0
        case "max_tokens_over":
            span.max_tokens = limits.max_span_tokens + draw.randint(1, 1000)
        case "bad_temperature":
            span.sampling.temperature = draw.choice([-1.0, float("nan"), float("inf")])
        case "bad_top_p":
            span.sampling.top_p = draw.choice([1.5, -0.5])
        case "no_context":
            span.ClearField("context")
        case "empty_messages":
            span.text.CopyFrom(relay_pb2.TextContext(assistant_prefix="Hello"))
        case "no_role":
            span.text.CopyFrom(
                relay_pb2.TextContext(messages=[relay_pb2.ChatMessage(content="no role")])
            )
        case "bad_session_id":
            span.session_id = draw.choice(["", "s" * draw.randint(129, 5000)])
        case "header_mismatch":
            return MalformedCall(span=span, header="another-session-" + "x" * draw.randint(0, 4000))
        case "reused_request_id" if answered_request_id is not None:
            span.request_id = answered_request_id
            span.max_tokens = 1 if span.max_tokens != 1 else 2  # another request, same id
        case "reused_request_id":  # nothing answered yet in this session: nothing to reuse
            span.max_tokens = 0
        case "garbage_bytes":
            # A length-delimited field 1 whose length runs past the end: never parses.
            tail = bytes(draw.randrange(256) for _ in range(32))
            return MalformedCall(span=None, raw=b"\x0a\xff\xff\xff\xff\x0f" + tail)
        case "no_key":
            return MalformedCall(span=span, expected=grpc.StatusCode.UNAUTHENTICATED, no_key=True)
        case "draft_in_text_mode":  # text mode shares no token ids with the student
            if span.WhichOneof("context") != "text":
                span.text.CopyFrom(
                    relay_pb2.TextContext(
                        messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content="hi")]
                    )
                )
            span.draft.CopyFrom(relay_pb2.Draft(token_ids=[1, 2], min_prob=0.1))
        case "empty_draft":
            _token_mode(span, info)
            span.draft.CopyFrom(relay_pb2.Draft(min_prob=0.1))
        case "bad_draft_min_prob":
            _token_mode(span, info)
            min_prob = draw.choice([-0.5, 1.5, float("nan")])
            span.draft.CopyFrom(relay_pb2.Draft(token_ids=[1, 2], min_prob=min_prob))
        case "draft_out_of_vocabulary":
            _token_mode(span, info)
            bad = info.vocab_size + draw.randint(0, 1000)
            span.draft.CopyFrom(relay_pb2.Draft(token_ids=[1, bad], min_prob=0.1))
        case "draft_too_long":  # the context and the draft together over the limit
            _token_mode(span, info)
            extra = limits.max_context_tokens + draw.randint(1, 50) - len(span.tokens.token_ids)
            span.draft.CopyFrom(relay_pb2.Draft(token_ids=[1] * extra, min_prob=0.1))
        case _:
            raise ValueError(f"no such malformation: {malformation}")
    return MalformedCall(span=span)


def _token_mode(span: relay_pb2.SpanRequest, info: relay_pb2.GetInfoResponse) -> None:
    """A token context, if the span had a text one (the malformation is in its tokens)."""
    if span.WhichOneof("context") != "tokens":
        span.tokens.CopyFrom(
            relay_pb2.TokenContext(
                token_ids=[1, 2, 3], tokenizer_fingerprint=info.tokenizer_fingerprint
            )
        )
