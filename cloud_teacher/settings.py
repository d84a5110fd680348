"""The teacher's settings: one typed object; flags, environment and a TOML file map onto it.

Precedence: flags > environment (`RELAY_TEACHER_<NAME>`, e.g. RELAY_TEACHER_PORT=50052) >
config file (`--config teacher.toml`, keys are the field names) > defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from cloud_teacher.engines.registry import ENGINES
from cloud_teacher.errors import ConfigError
from cloud_teacher.requests import Limits
from relay_common.errors import SettingsFileError
from relay_common.settings import FileSettings, load_with_file

ENV_PREFIX = "RELAY_TEACHER_"


class TeacherSettings(FileSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(50051, ge=0, le=65535, description="Port to listen on; 0 picks a free one.")
    ready_file: Path | None = Field(
        None,
        description="Once serving, write HOST:PORT (the bound port) to this file, atomically.",
    )
    engine: str = Field(
        "llama.cpp", description=f"Model engine: {' or '.join(ENGINES)} (vllm needs a GPU)."
    )
    model: Path | None = Field(
        None, description="GGUF model file; default: the embedded Gemma-3-270M."
    )
    n_ctx: int = Field(
        4096, ge=64, le=1_048_576, description="Context window per session, in tokens."
    )
    slots: int = Field(
        8,
        ge=1,
        le=256,
        description="Sessions generated at once, decoded together one batch per step; "
        "more wait in the queue.",
    )
    kv_sessions: int = Field(
        16,
        ge=1,
        le=256,
        description="Sessions whose KV prefix is kept (one llama.cpp sequence each, "
        "kv_sessions x n_ctx KV cells in all); the least recently used idle one is evicted "
        "when all are taken.",
    )
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads for llama.cpp; default: all usable cores."
    )
    n_ubatch: int = Field(
        512,
        ge=1,
        le=512,
        description="Tokens llama.cpp evaluates per micro-batch (prompt speed); exact sets 1.",
    )
    exact: bool = Field(
        False,
        description="Batch-invariant evaluation: one token per micro-batch and one session per "
        "step, so logits do not depend on batching; a student on the same model in exact mode "
        "then gets spans identical to what it would write alone. Slower prompts and no "
        "batching across sessions.",
    )
    max_span_tokens: int = Field(
        256, ge=1, le=65_536, description="Largest max_tokens a span request may ask for."
    )
    max_context_tokens: int | None = Field(
        None,
        ge=1,
        description="Largest context a request may send or render to; "
        "default: n_ctx - max_span_tokens.",
    )
    max_pending: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Span requests admitted at once (running or queued); "
        "more are refused with RESOURCE_EXHAUSTED.",
    )
    remembered_requests: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Answered request ids kept for idempotent retries (least recent dropped).",
    )
    max_sessions: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Sessions whose usage is kept (least recent dropped).",
    )
    grace_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On SIGTERM/SIGINT, time spans in flight get to finish.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Logging threshold (stderr)."
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
        return engine

    @field_validator("ready_file")
    @classmethod
    def _ready_file_folder_exists(cls, path: Path | None) -> Path | None:
        # Checked now: found only after the model loaded, it would cost a start-up.
        if path is not None and not path.parent.is_dir():
            raise ValueError(f"folder {path.parent} does not exist; create it or choose another")
        return path

    @model_validator(mode="after")
    def _fit_context_window(self) -> TeacherSettings:
        if self.slots > self.kv_sessions:
            raise ValueError(
                f"slots ({self.slots}) must not exceed kv_sessions ({self.kv_sessions}): each "
                "session generating holds a sequence; raise kv_sessions or lower slots"
            )
        if self.max_span_tokens >= self.n_ctx:
            raise ValueError(
                f"max_span_tokens ({self.max_span_tokens}) leaves no room for a context in "
                f"n_ctx ({self.n_ctx}); raise n_ctx or lower max_span_tokens"
            )
        if self.max_context_tokens is None:
            self.max_context_tokens = self.n_ctx - self.max_span_tokens
        if self.max_context_tokens + self.max_span_tokens > self.n_ctx:
            raise ValueError(
                f"max_context_tokens ({self.max_context_tokens}) + max_span_tokens "
                f"({self.max_span_tokens}) must fit n_ctx ({self.n_ctx}); "
                "raise n_ctx or lower the limits"
            )
        return self

    @property
    def limits(self) -> Limits:
        return Limits(
            max_span_tokens=self.max_span_tokens,
            max_context_tokens=self.n_ctx - self.max_span_tokens
            if self.max_context_tokens is None
            else self.max_context_tokens,
        )


def load_settings(*, config_file: Path | None = None, **overrides: Any) -> TeacherSettings:
    """Settings from flags (`overrides`), environment and file; `ConfigError` when invalid."""
    try:
        return load_with_file(TeacherSettings, config_file=config_file, values=overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    except SettingsFileError as exc:
        raise ConfigError(str(exc)) from exc


def _describe(exc: ValidationError) -> str:
    """One line: the first problem, where it can be set, and where to read about it."""
    error = exc.errors(include_url=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return f"invalid settings: {message}"
    name = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown setting {name!r}; see relay-teacher serve --help for the settings"
    return (
        f"invalid setting {name} = {error.get('input')!r}: {message} "
        f"(flag --{name.replace('_', '-')}, environment {ENV_PREFIX}{name.upper()}); "
        "see relay-teacher serve --help"
    )
