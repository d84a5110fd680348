from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]
    ROLE_ASSISTANT: _ClassVar[Role]

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_END_OF_ANSWER: _ClassVar[FinishReason]
    FINISH_REASON_LINE_END: _ClassVar[FinishReason]
    FINISH_REASON_DRAFT_ACCEPTED: _ClassVar[FinishReason]
ROLE_UNSPECIFIED: Role
ROLE_SYSTEM: Role
ROLE_USER: Role
ROLE_ASSISTANT: Role
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_END_OF_ANSWER: FinishReason
FINISH_REASON_LINE_END: FinishReason
FINISH_REASON_DRAFT_ACCEPTED: FinishReason

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("model_name", "tokenizer_fingerprint", "vocab_size", "limits", "engine", "replay_window")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    tokenizer_fingerprint: str
    vocab_size: int
    limits: Limits
    engine: str
    replay_window: ReplayWindow
    def __init__(self, model_name: _Optional[str] = ..., tokenizer_fingerprint: _Optional[str] = ..., vocab_size: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., engine: _Optional[str] = ..., replay_window: _Optional[_Union[ReplayWindow, _Mapping]] = ...) -> None: ...

class ReplayWindow(_message.Message):
    __slots__ = ("requests_per_session", "seconds")
    REQUESTS_PER_SESSION_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    requests_per_session: int
    seconds: float
    def __init__(self, requests_per_session: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_span_tokens", "max_context_tokens", "max_message_bytes", "max_calls_per_key", "key_tokens_per_minute")
    MAX_SPAN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CALLS_PER_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    max_span_tokens: int
    max_context_tokens: int
    max_message_bytes: int
    max_calls_per_key: int
    key_tokens_per_minute: int
    def __init__(self, max_span_tokens: _Optional[int] = ..., max_context_tokens: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_calls_per_key: _Optional[int] = ..., key_tokens_per_minute: _Optional[int] = ...) -> None: ...

class SpanRequest(_message.Message):
    __slots__ = ("session_id", "request_id", "tokens", "text", "max_tokens", "sampling", "stop_at_line_end", "draft")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_LINE_END_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    request_id: str
    tokens: TokenContext
    text: TextContext
    max_tokens: int
    sampling: Sampling
    stop_at_line_end: bool
    draft: Draft
    def __init__(self, session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., tokens: _Optional[_Union[TokenContext, _Mapping]] = ..., text: _Optional[_Union[TextContext, _Mapping]] = ..., max_tokens: _Optional[int] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., stop_at_line_end: _Optional[bool] = ..., draft: _Optional[_Union[Draft, _Mapping]] = ...) -> None: ...

class Draft(_message.Message):
    __slots__ = ("token_ids", "min_prob", "accept_top_token")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_PROB_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_TOP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    min_prob: float
    accept_top_token: bool
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., min_prob: _Optional[float] = ..., accept_top_token: _Optional[bool] = ...) -> None: ...

class TokenContext(_message.Message):
    __slots__ = ("token_ids", "tokenizer_fingerprint")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    tokenizer_fingerprint: str
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., tokenizer_fingerprint: _Optional[str] = ...) -> None: ...

class TextContext(_message.Message):
    __slots__ = ("messages", "assistant_prefix")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ASSISTANT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    assistant_prefix: str
    def __init__(self, messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., assistant_prefix: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: Role
    content: str
    def __init__(self, role: _Optional[_Union[Role, str]] = ..., content: _Optional[str] = ...) -> None: ...

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_p", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_p: float
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class GenerateSpanRequest(_message.Message):
    __slots__ = ("span",)
    SPAN_FIELD_NUMBER: _ClassVar[int]
    span: SpanRequest
    def __init__(self, span: _Optional[_Union[SpanRequest, _Mapping]] = ...) -> None: ...

class GenerateSpanResponse(_message.Message):
    __slots__ = ("token_ids", "text", "finish_reason", "usage", "session_usage", "accepted_draft_tokens")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_USAGE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    finish_reason: FinishReason
    usage: SpanUsage
    session_usage: SessionUsage
    accepted_draft_tokens: int
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[SpanUsage, _Mapping]] = ..., session_usage: _Optional[_Union[SessionUsage, _Mapping]] = ..., accepted_draft_tokens: _Optional[int] = ...) -> None: ...

class StreamSpanRequest(_message.Message):
    __slots__ = ("span",)
    SPAN_FIELD_NUMBER: _ClassVar[int]
    span: SpanRequest
    def __init__(self, span: _Optional[_Union[SpanRequest, _Mapping]] = ...) -> None: ...

class StreamSpanResponse(_message.Message):
    __slots__ = ("token_ids", "text", "finish_reason", "usage", "session_usage", "accepted_draft_tokens")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SESSION_USAGE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    text: str
    finish_reason: FinishReason
    usage: SpanUsage
    session_usage: SessionUsage
    accepted_draft_tokens: int
    def __init__(self, token_ids: _Optional[_Iterable[int]] = ..., text: _Optional[str] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., usage: _Optional[_Union[SpanUsage, _Mapping]] = ..., session_usage: _Optional[_Union[SessionUsage, _Mapping]] = ..., accepted_draft_tokens: _Optional[int] = ...) -> None: ...

class SpanUsage(_message.Message):
    __slots__ = ("prompt_tokens", "cached_prompt_tokens", "generated_tokens", "queue_time_ms", "compute_time_ms", "replayed", "draft_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    queue_time_ms: float
    compute_time_ms: float
    replayed: bool
    draft_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., queue_time_ms: _Optional[float] = ..., compute_time_ms: _Optional[float] = ..., replayed: _Optional[bool] = ..., draft_tokens: _Optional[int] = ...) -> None: ...

class SessionUsage(_message.Message):
    __slots__ = ("session_id", "spans", "prompt_tokens", "cached_prompt_tokens", "generated_tokens", "draft_tokens")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    spans: int
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    draft_tokens: int
    def __init__(self, session_id: _Optional[str] = ..., spans: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., draft_tokens: _Optional[int] = ...) -> None: ...

class GetSessionUsageRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionUsageResponse(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: SessionUsage
    def __init__(self, usage: _Optional[_Union[SessionUsage, _Mapping]] = ...) -> None: ...

class GetKeyUsageRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetKeyUsageResponse(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: KeyUsage
    def __init__(self, usage: _Optional[_Union[KeyUsage, _Mapping]] = ...) -> None: ...

class KeyUsage(_message.Message):
    __slots__ = ("key_name", "spans", "prompt_tokens", "cached_prompt_tokens", "generated_tokens", "draft_tokens")
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    key_name: str
    spans: int
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    draft_tokens: int
    def __init__(self, key_name: _Optional[str] = ..., spans: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., draft_tokens: _Optional[int] = ...) -> None: ...
