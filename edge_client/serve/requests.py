"""An OpenAI chat-completions request, validated once into what the relay loop takes.

    request = parse_chat_request(body_bytes)            # ApiError(400) naming the field
    messages = request.chat_messages()                   # tuple[ChatMessage, ...]
    options = request.relay_options(settings)            # RelayOptions (settings fill gaps)

Types are strict (a string is not a number, 1 is not true), as OpenAI's API is. Fields that
would change what an answer means and that the server cannot honour (tools, logprobs, JSON
mode, n > 1) are refused; other fields clients send (frequency_penalty, …) are ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge_client.relay.loop import RelayOptions
from edge_client.serve.errors import ApiError
from edge_client.settings import EdgeSettings
from relay_common.chat import ChatMessage
from relay_common.sampling import SamplingParams

MAX_STOP_STRINGS = 4  # as OpenAI's API
# Fields whose meaning the server cannot honour: refused rather than silently dropped.
_UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logit_bias", "audio")


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    # "developer" is OpenAI's newer name for the system role.
    role: Literal["system", "developer", "user", "assistant"]
    content: Any  # a string, or a list of text parts: checked below
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _text_content(cls, content: Any) -> str:
        """The text of the content; parts are joined by line breaks."""
        if isinstance(content, str):
            return content
        parts = content if isinstance(content, list) else None
        if parts is None or not all(
            isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
            for part in parts
        ):
            raise ValueError(
                'must be a string or a list of text parts ({"type": "text", "text": "..."}); '
                "images and audio are not served"
            )
        return "\n".join(part["text"] for part in parts)


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    user: str | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n = 1 is served: one student writes one answer at a time")
        return n

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        if any(not each for each in stops):
            raise ValueError("a stop string must not be empty")
        return stop

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, logprobs: bool | None) -> bool | None:
        if logprobs:
            raise ValueError("logprobs are not served")
        return logprobs

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, response_format: dict[str, Any] | None) -> dict[str, Any] | None:
        if response_format is not None and response_format.get("type", "text") != "text":
            raise ValueError("only the text response format is served")
        return response_format

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        return tuple(
            ChatMessage("system" if m.role == "developer" else m.role, m.content)
            for m in self.messages
        )

    def relay_options(self, settings: EdgeSettings) -> RelayOptions:
        """This request's options; what it leaves out comes from the server's settings."""
        max_tokens = self.max_completion_tokens or self.max_tokens or settings.max_tokens
        return RelayOptions(
            max_tokens=max_tokens,
            sampling=SamplingParams(
                temperature=settings.temperature if self.temperature is None else self.temperature,
                top_p=settings.top_p if self.top_p is None else self.top_p,
                seed=settings.seed if self.seed is None else self.seed,
            ),
            stop=self.stop_strings,
        )


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request in `body` (JSON); ApiError(400) naming the first field that is wrong."""
    try:
        request = ChatRequest.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise _bad_request(exc) from exc
    extra = request.model_extra or {}
    for field in _UNSUPPORTED:
        if extra.get(field) not in (None, [], {}):
            raise ApiError(400, f"{field}: not supported by this server", param=field)
    return request


def _bad_request(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return ApiError(
            400,
            f"the request body is not valid JSON: {error['msg'].removeprefix('Invalid JSON: ')}",
        )
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not location:
        return ApiError(400, f"the request body must be a JSON object: {message}")
    return ApiError(400, f"{location}: {message}", param=location)
