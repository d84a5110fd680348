"""How the edge calls its teacher: deadlines, retries, back-off and the circuit breaker.

CLI flags and environment variables map onto `TeacherClientSettings`; the defaults suit a teacher in
the cloud. Tests shrink every duration so that failures are quick.

    settings = TeacherClientSettings(deadline_s=5.0, attempts=2)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TeacherClientSettings(BaseModel):
    """Settings of one `GrpcTeacherClient`. Invalid values raise pydantic's ValidationError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_s: float = Field(
        default=10.0, gt=0, description="Deadline of one attempt (one RPC), in seconds."
    )
    attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per call, the first one included."
    )
    latency_budget_s: float = Field(
        default=20.0,
        gt=0,
        description="Longest a call may take, retries and back-off included, in seconds.",
    )
    backoff_initial_s: float = Field(
        default=0.2, ge=0, description="Upper bound of the first back-off, in seconds."
    )
    backoff_max_s: float = Field(
        default=2.0, ge=0, description="Upper bound of any back-off, in seconds."
    )
    breaker_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed calls that open the circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        default=30.0,
        ge=0,
        description="Time the breaker stays open before it lets one probe call through.",
    )

    @model_validator(mode="after")
    def _backoff_bounds_ordered(self) -> TeacherClientSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be at least "
                f"backoff_initial_s ({self.backoff_initial_s})"
            )
        return self
