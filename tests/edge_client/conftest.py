"""Edge fixtures: the embedded student, real teacher processes (each started once) and
teacher-client settings that fail fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.local import start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.embedded import smollm2_path


@pytest.fixture(scope="session")
def student() -> Iterator[LlamaStudent]:
    """The embedded SmolLM2 student in exact mode (the identity tests need it). Each
    RelaySession syncs its own prompt, so tests can share it (the KV cache is re-synced, never
    assumed)."""
    model = LlamaStudent(n_ctx=2048, n_ubatch=1)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2_teacher() -> Iterator[str]:
    """`relay-teacher serve --exact` on the student's own GGUF (token mode); yields its
    address."""
    with start_local_teacher(model=smollm2_path(), exact=True) as teacher:
        yield teacher.address


@pytest.fixture(scope="session")
def gemma_teacher() -> Iterator[str]:
    """`relay-teacher serve` on the embedded Gemma (another tokenizer: text mode)."""
    with start_local_teacher() as teacher:
        yield teacher.address


@pytest.fixture
def fast_settings() -> TeacherClientSettings:
    """Quick failures: tiny deadlines and back-off, a breaker with a long cool-down (tests move
    an injected clock past it instead of waiting)."""
    return TeacherClientSettings(
        deadline_s=1.0,
        attempts=3,
        latency_budget_s=5.0,
        backoff_initial_s=0.001,
        backoff_max_s=0.01,
        breaker_threshold=3,
        breaker_cooldown_s=30.0,
    )


@pytest.fixture
def patient_settings() -> TeacherClientSettings:
    """For calls that must succeed: a real teacher's first span on a busy 2-core machine can
    take far longer than a production deadline."""
    return TeacherClientSettings(deadline_s=120.0, latency_budget_s=300.0)
