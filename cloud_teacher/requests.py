"""Span requests as the teacher uses them, validated once from the wire form.

    request = parse_span_request(proto.span, limits=limits, vocab_size=n, fingerprint=fp)

Every check that needs no tokenizer happens here, before a request waits for an engine slot;
the text-mode context length is known only after rendering, so engines call
`check_context_length` themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from cloud_teacher.errors import ContextTooLongError, InvalidRequestError, TokenizerMismatchError
from relay_common.chat import ChatMessage
from relay_common.echo import quoted
from relay_common.routing import SESSION_HEADER, session_header_value
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2

MAX_ID_LENGTH = 128

_ROLES = {
    relay_pb2.ROLE_SYSTEM: "system",
    relay_pb2.ROLE_USER: "user",
    relay_pb2.ROLE_ASSISTANT: "assistant",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_span_tokens: int
    max_context_tokens: int


@dataclass(frozen=True, slots=True)
class TokenContext:
    token_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TextContext:
    messages: tuple[ChatMessage, ...]
    assistant_prefix: str


@dataclass(frozen=True, slots=True)
class Draft:
    """The student's draft after the context, for the teacher to check (token mode only): a
    token is rejected where the teacher gives it less than `min_prob`, unless it is the
    teacher's own top token and `accept_top_token` (see `cloud_teacher/drafts.py`)."""

    token_ids: tuple[int, ...]
    min_prob: float
    accept_top_token: bool


@dataclass(frozen=True, slots=True)
class SpanRequest:
    session_id: str
    request_id: str
    context: TokenContext | TextContext
    max_tokens: int
    sampling: SamplingParams
    # Whose request this is: a digest of the caller's API key, "" when the teacher has no keys.
    # Engines never serve one tenant's request from another tenant's cached prefix.
    tenant: str = ""
    stop_at_line_end: bool = False  # end the span with its first non-empty line
    # Check this draft first; the span then starts where the draft is first rejected.
    draft: Draft | None = None


def parse_span_request(
    span: relay_pb2.SpanRequest,
    *,
    limits: Limits,
    vocab_size: int,
    fingerprint: str,
    tenant: str = "",
) -> SpanRequest:
    """The validated request of `tenant`; raises `InvalidRequestError` saying what to change."""
    session_id = check_id("session_id", span.session_id)  # checked in the order of the fields
    request_id = check_id("request_id", span.request_id)
    context = _parse_context(span, limits=limits, vocab_size=vocab_size, fingerprint=fingerprint)
    return SpanRequest(
        session_id=session_id,
        request_id=request_id,
        context=context,
        max_tokens=_parse_max_tokens(span.max_tokens, limits),
        sampling=_parse_sampling(span.sampling if span.HasField("sampling") else None),
        tenant=tenant,
        stop_at_line_end=span.stop_at_line_end,
        draft=_parse_draft(span, context, limits=limits, vocab_size=vocab_size)
        if span.HasField("draft")
        else None,
    )


def check_id(name: str, value: str) -> str:
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidRequestError(
            f"{name} must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}; use e.g. a UUID"
        )
    return value


def check_session_header(metadata: Iterable[tuple[str, str]], session_id: str) -> None:
    """A call whose session header names another session than its body is refused: a proxy
    routed it by the header, the teacher would serve and bill it by the body. No header is
    fine (a client that does not go through a session-hashing proxy)."""
    expected = session_header_value(session_id)
    for key, value in metadata:
        if key == SESSION_HEADER and value != expected:
            raise InvalidRequestError(
                f"the {SESSION_HEADER} header ({quoted(value)}) does not match the request's "
                f"session_id (expected {quoted(expected)}, its percent-encoded form); send the "
                "session_id of the body in the header, or leave the header out"
            )


def check_context_length(n_tokens: int, limits: Limits) -> None:
    if n_tokens > limits.max_context_tokens:
        raise ContextTooLongError(
            f"the context is {n_tokens} teacher tokens, over the limit of "
            f"{limits.max_context_tokens}; shorten the conversation or the answer so far"
        )


def _parse_context(
    span: relay_pb2.SpanRequest, *, limits: Limits, vocab_size: int, fingerprint: str
) -> TokenContext | TextContext:
    match span.WhichOneof("context"):
        case "tokens":
            return _parse_tokens(
                span.tokens, limits=limits, vocab_size=vocab_size, fingerprint=fingerprint
            )
        case "text":
            return _parse_text(span.text)
        case _:
            raise InvalidRequestError(
                "the request has no context; set `tokens` (token mode) or `text` (text mode)"
            )


def _parse_tokens(
    tokens: relay_pb2.TokenContext, *, limits: Limits, vocab_size: int, fingerprint: str
) -> TokenContext:
    if not tokens.token_ids:
        raise InvalidRequestError(
            "the context is empty: token_ids holds no tokens; send the prompt and answer so far"
        )
    if tokens.tokenizer_fingerprint != fingerprint:
        sent = tokens.tokenizer_fingerprint
        raise TokenizerMismatchError(
            f"token mode needs the teacher's tokenizer: the request's fingerprint is "
            f"{quoted(sent) if sent else '(empty)'}, the teacher's is {fingerprint}; "
            "send the context in text mode instead"
        )
    check_context_length(len(tokens.token_ids), limits)
    _check_vocabulary(tokens.token_ids, vocab_size, where="")
    return TokenContext(token_ids=tuple(tokens.token_ids))


def _parse_draft(
    span: relay_pb2.SpanRequest,
    context: TokenContext | TextContext,
    *,
    limits: Limits,
    vocab_size: int,
) -> Draft:
    if isinstance(context, TextContext):
        raise InvalidRequestError(
            "a draft needs token mode: in text mode the teacher and the student share no token "
            "ids; send the request without `draft`, or in token mode"
        )
    draft = span.draft
    if not draft.token_ids:
        raise InvalidRequestError(
            "draft.token_ids is empty; send the student's draft, or leave `draft` out to ask "
            "for a plain span"
        )
    # `not x >= 0` also refuses NaN.
    if not 0 <= draft.min_prob <= 1:
        raise InvalidRequestError(
            f"draft.min_prob must be in [0, 1] (a probability), got {draft.min_prob}"
        )
    total = len(context.token_ids) + len(draft.token_ids)
    if total > limits.max_context_tokens:
        raise ContextTooLongError(
            f"the context and the draft are {total} teacher tokens, over the limit of "
            f"{limits.max_context_tokens}; send a shorter draft or start a new conversation"
        )
    _check_vocabulary(draft.token_ids, vocab_size, where=" of the draft")
    return Draft(
        token_ids=tuple(draft.token_ids),
        min_prob=float(draft.min_prob),
        accept_top_token=draft.accept_top_token,
    )


def _check_vocabulary(token_ids: Iterable[int], vocab_size: int, *, where: str) -> None:
    for position, token in enumerate(token_ids):
        if token >= vocab_size:
            raise InvalidRequestError(
                f"token id {token} at position {position}{where} is outside the teacher's "
                f"vocabulary (0 to {vocab_size - 1}); check that the ids come from the same "
                "tokenizer"
            )


def _parse_text(text: relay_pb2.TextContext) -> TextContext:
    if not text.messages:
        raise InvalidRequestError(
            "the context is empty: text.messages holds no messages; send at least one"
        )
    messages = []
    for index, message in enumerate(text.messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise InvalidRequestError(
                f"message {index} has no valid role ({message.role}); "
                "set ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT"
            )
        messages.append(ChatMessage(role=role, content=message.content))
    return TextContext(messages=tuple(messages), assistant_prefix=text.assistant_prefix)


def _parse_max_tokens(max_tokens: int, limits: Limits) -> int:
    if not 1 <= max_tokens <= limits.max_span_tokens:
        raise InvalidRequestError(
            f"max_tokens must be 1 to {limits.max_span_tokens}, got {max_tokens}; "
            "ask for a shorter span"
        )
    return max_tokens


def _parse_sampling(sampling: relay_pb2.Sampling | None) -> SamplingParams:
    if sampling is None:
        return SamplingParams()
    temperature, top_p = sampling.temperature, sampling.top_p
    # `not x >= 0` also refuses NaN.
    if not temperature >= 0 or math.isinf(temperature):
        raise InvalidRequestError(
            f"sampling.temperature must be a finite number >= 0 (0 is greedy), got {temperature}"
        )
    if not 0 <= top_p <= 1:
        raise InvalidRequestError(
            f"sampling.top_p must be in [0, 1] (0 means 1: no truncation), got {top_p}"
        )
    return SamplingParams(
        temperature=float(temperature),
        top_p=float(top_p) or 1.0,
        seed=sampling.seed if sampling.HasField("seed") else None,
    )
