"""Helpers the teacher's tests share (imported as `tests.cloud_teacher.teacher_helpers`)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from cloud_teacher.requests import Draft, SpanRequest, TokenContext
from relay_common.gguf import GgufModel
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2


def span(
    tokens: list[int],
    *,
    session: str,
    max_tokens: int = 8,
    tenant: str = "",
    stop_at_line_end: bool = False,
    draft: Draft | None = None,
    **sampling: Any,
) -> SpanRequest:
    """A token-mode span request for the engines, as the server would pass it on."""
    return SpanRequest(
        session_id=session,
        request_id="r",
        context=TokenContext(token_ids=tuple(tokens)),
        max_tokens=max_tokens,
        sampling=SamplingParams(**sampling),
        tenant=tenant,
        stop_at_line_end=stop_at_line_end,
        draft=draft,
    )


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 120) -> str:
    """The file's text once `relay-teacher serve` wrote it (its ready file); fails when the
    process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if process.poll() is not None:
            raise AssertionError(f"relay-teacher exited early: {process.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError(f"{path} not written within {timeout} s")


def token_span(
    tokenizer: GgufModel, *, prompt: str = "Hi", **fields: object
) -> relay_pb2.SpanRequest:
    """A token-mode SpanRequest as a client sends it: `prompt` in `tokenizer`'s ids, then
    `fields` set on it (messages copied in)."""
    span = relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="r1",
        max_tokens=2,
        tokens=relay_pb2.TokenContext(
            token_ids=tokenizer.tokenize(prompt, add_bos=True),
            tokenizer_fingerprint=tokenizer.fingerprint,
        ),
    )
    for name, value in fields.items():
        if isinstance(
            value,
            relay_pb2.Sampling | relay_pb2.TokenContext | relay_pb2.TextContext | relay_pb2.Draft,
        ):
            getattr(span, name).CopyFrom(value)
        else:
            setattr(span, name, value)
    return span
