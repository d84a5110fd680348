"""Edge fixtures: the embedded student and real teacher processes, each started once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.local import start_local_teacher
from relay_common.embedded import smollm2_path


@pytest.fixture(scope="session")
def student() -> Iterator[LlamaStudent]:
    """The embedded SmolLM2 student. Each RelaySession syncs its own prompt, so tests can share
    it (the KV cache is re-synced, never assumed)."""
    model = LlamaStudent(n_ctx=2048)
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2_teacher() -> Iterator[str]:
    """`relay-teacher serve` on the student's own GGUF (token mode); yields its address."""
    with start_local_teacher(model=smollm2_path()) as teacher:
        yield teacher.address


@pytest.fixture(scope="session")
def gemma_teacher() -> Iterator[str]:
    """`relay-teacher serve` on the embedded Gemma (another tokenizer: text mode)."""
    with start_local_teacher() as teacher:
        yield teacher.address
