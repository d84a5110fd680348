"""Edge fixtures: the embedded student, loaded once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_client.student.llama_student import LlamaStudent


@pytest.fixture(scope="session")
def student() -> Iterator[LlamaStudent]:
    """The embedded SmolLM2 student. Each RelaySession syncs its own prompt, so tests can share
    it (the KV cache is re-synced, never assumed)."""
    model = LlamaStudent(n_ctx=2048)
    yield model
    model.close()
