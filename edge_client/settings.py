"""The edge's settings: one typed object that CLI flags, `RELAY_*` environment variables and a
TOML config file all map onto (flags win over the environment, which wins over the file).

    # ~/.config/relay-edge/config.toml (or --config PATH, or RELAY_CONFIG=PATH)
    teacher = "teacher.example.com:50051"
    policy = "confidence"
    threshold = 0.4
    [teacher_client]
    deadline_s = 5.0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from edge_client.errors import ConfigError
from edge_client.ledger.store import default_ledger_path
from edge_client.policies.registry import PolicyName
from edge_client.serve.settings import ServeSettings
from edge_client.teacher.address import parse_address
from edge_client.teacher.channel import ChannelSecurity
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.errors import SettingsFileError
from relay_common.settings import FileSettings, load_with_file

LOCAL_TEACHER = "local"


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir("relay-edge")) / "config.toml"


class EdgeSettings(FileSettings):
    """Everything `relay-edge ask`, `chat` and `serve` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="RELAY_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    teacher: str | None = Field(
        default=None,
        description=(
            "Teacher as HOST:PORT, or 'local' to start relay-teacher on a free loopback port "
            "for the session (the default when none is set and relay-teacher is installed)."
        ),
    )
    teacher_free: bool = Field(
        default=False, description="Never call a teacher: the student writes every token."
    )
    teacher_model: Path | None = Field(
        default=None, description="GGUF file for the local teacher (default: embedded Gemma)."
    )
    student: Path | None = Field(
        default=None, description="GGUF file of the student (default: embedded SmolLM2-135M)."
    )
    n_ctx: int = Field(default=4096, ge=256, le=131072, description="Student context window.")
    n_ubatch: int = Field(
        default=512,
        ge=1,
        le=512,
        description="Tokens the student evaluates per llama.cpp micro-batch (prompt speed); "
        "exact sets 1.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads of the student (and its prompts); default: llama.cpp's for "
        "decoding (half the cores, right where cores are hyper-threads) and every usable core "
        "for prompts. On a VM whose vCPUs are whole cores, all of them decode faster.",
    )
    exact: bool = Field(
        default=False,
        description=(
            "Batch-invariant evaluation on the student and the local teacher (one token per "
            "llama.cpp micro-batch): logits then do not depend on how tokens were batched, so "
            "with a teacher on the student's own model a greedy relayed answer equals the "
            "student's alone exactly. Slower prompts."
        ),
    )
    policy: PolicyName = Field(
        default=PolicyName.CONFIDENCE, description="When the student calls the teacher."
    )
    threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="confidence: call when the top-token probability is below this; "
        "router: when the router's score is above this.",
    )
    router: Path | None = Field(
        default=None,
        description="router: the router file (`relay-edge router train`); default: the "
        "router shipped for the --pair.",
    )
    entropy_bound: float = Field(
        default=1.5,
        ge=0,
        description="entropy, step: call when the next-token entropy (nats) is above this.",
    )
    span: int = Field(default=8, ge=1, le=1024, description="Teacher tokens per call (n).")
    max_span: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="command: largest span a <call>n</call> may ask; step: longest step the "
        "teacher writes (it ends at its line break).",
    )
    min_gap: int = Field(
        default=4, ge=0, description="confidence: student tokens between two calls, at least."
    )
    budget: int | None = Field(
        default=None, ge=0, description="confidence: teacher tokens a session may use, at most."
    )
    rate: float = Field(
        default=0.05, ge=0, le=1, description="random: chance of a call at each position."
    )
    accept_prob: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="verify: the teacher rejects a draft token it gives a probability below "
        "this (unless it is its own top token) and writes --span tokens there.",
    )
    draft: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="verify: student tokens per draft the teacher checks.",
    )
    draft_window: int = Field(
        default=32,
        ge=0,
        le=4096,
        description="verify: tokens the student may draft past a check in flight (0: it waits "
        "for each check).",
    )
    max_tokens: int = Field(
        default=512, ge=1, le=32768, description="Tokens per answer, student and teacher."
    )
    temperature: float = Field(
        default=0.0, ge=0, le=5, description="Sampling temperature; 0 is greedy."
    )
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling mass.")
    seed: int | None = Field(default=None, ge=0, description="Seed for sampling and 'random'.")
    system_prompt: str | None = Field(
        default=None, description="System message at the start of every conversation."
    )
    ledger_path: Path = Field(
        default_factory=default_ledger_path,
        description="SQLite file of the per-session accounting.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key for the teacher, sent as 'authorization: Bearer <key>' "
        "(prefer RELAY_API_KEY or --api-key-file to a flag: flags show in ps).",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="File holding the teacher's API key (one line); or set RELAY_API_KEY.",
    )
    tls: bool = Field(
        default=False, description="Reach the teacher over TLS, trusting the system's CAs."
    )
    tls_ca: Path | None = Field(
        default=None, description="CA bundle (PEM) to trust for the teacher's certificate (TLS)."
    )
    tls_cert: Path | None = Field(
        default=None, description="Client certificate (PEM) for a teacher that needs mutual TLS."
    )
    tls_key: Path | None = Field(default=None, description="Private key (PEM) of --tls-cert.")
    teacher_client: TeacherClientSettings = Field(
        default_factory=TeacherClientSettings, description="Deadlines, retries, circuit breaker."
    )
    serve: ServeSettings = Field(
        default_factory=ServeSettings,
        description="relay-edge serve: address, API keys, queue, shutdown grace.",
    )

    @field_validator("teacher")
    @classmethod
    def _teacher_address(cls, value: str | None) -> str | None:
        if value is None or value == LOCAL_TEACHER:
            return value
        try:
            return parse_address(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _span_within_limit(self) -> EdgeSettings:
        if self.span > self.max_span:
            raise ValueError(f"span ({self.span}) must not exceed max_span ({self.max_span})")
        return self


def channel_security(settings: EdgeSettings) -> ChannelSecurity:
    """TLS and the API key for a remote teacher, read from the files the settings name."""
    return ChannelSecurity.from_files(
        tls=settings.tls,
        tls_ca=settings.tls_ca,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        api_key_file=settings.api_key_file,
    )


def load_settings(*, config_file: Path | None = None, **flags: Any) -> EdgeSettings:
    """Settings from flags (those not None), the environment and the config file.

    Raises ConfigError naming each bad value and where to fix it.
    """
    if config_file is None and "RELAY_CONFIG" in os.environ:
        config_file = Path(os.environ["RELAY_CONFIG"])
    if config_file is None and default_config_file().is_file():
        config_file = default_config_file()
    values = {name: value for name, value in flags.items() if value is not None}
    try:
        return load_with_file(EdgeSettings, config_file=config_file, values=values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    except SettingsFileError as exc:
        raise ConfigError(str(exc)) from exc
