"""`relay-edge serve`'s own settings: where it listens, who may call it, how many wait.

They are the `[serve]` table of the config file and `RELAY_SERVE__<NAME>` variables; the
student, teacher and policy settings are the ones `ask` and `chat` take.

    [serve]                      # ~/.config/relay-edge/config.toml
    port = 8080
    api_key_file = "~/.config/relay-edge/serve-keys.txt"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; one that is not loopback needs API keys "
        "(--serve-api-key-file) or --allow-insecure.",
    )
    port: int = Field(
        default=8080, ge=0, le=65535, description="Port to listen on; 0 picks a free one."
    )
    api_key_file: Path | None = Field(
        default=None,
        description="File of the API keys clients must send as 'Authorization: Bearer <key>', "
        "one per line (NAME:KEY or KEY, # comments). Default: no key is asked.",
    )
    allow_insecure: bool = Field(
        default=False,
        description="Listen on an address other than loopback without API keys.",
    )
    queue: int = Field(
        default=8,
        ge=0,
        le=1024,
        description="Requests that may wait while the student answers another; more get "
        "HTTP 429 with Retry-After.",
    )
    grace_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="On SIGTERM, time the answer in progress gets to finish before it is "
        "cancelled.",
    )
