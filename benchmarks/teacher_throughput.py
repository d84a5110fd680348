"""Teacher throughput under concurrent sessions, for any engine: aggregate tokens/s at 1, 4, 8
and 16 sessions at once and the ratio to 1 session, span latency p50/p99 at 8, the share of
prompt tokens served from cache with 16 interleaved sessions on each session's third call and
later, and errors and lost accounting (each session's GetSessionUsage against what it received).

Starts `relay-teacher serve --engine ENGINE` on a loopback port, on the engine's default model
(llama.cpp: the embedded Gemma-3-270M); arguments after `--` go to it unchanged (they override
the defaults here, e.g. `-- --model PATH`). Text mode, so any engine and model work. All
figures come from one run of one teacher. Prints one JSON line.

    python -m benchmarks.teacher_throughput [--engine llama.cpp] [--spans 4] [--span-tokens 32]
        [--levels 1,4,8,16] [-- --model PATH --threads 2 ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from edge_client.teacher.local import find_teacher_executable
from relay_proto import relay_pb2, relay_pb2_grpc

TOPICS = [
    "rivers", "volcanoes", "bees", "trains", "glaciers", "violins", "comets", "tea",
    "owls", "deserts", "bridges", "coral", "clocks", "maps", "wolves", "salt",
]  # fmt: skip
# For the llama.cpp engine: a batch as wide as the widest level.
LLAMA_CPP_DEFAULTS = ["--slots", "16", "--kv-sessions", "32", "--n-ctx", "1024"]
# The cached share counts a session's calls from its third on, as its target says: a base
# model's first span may begin with white space the answer drops, so the second call
# evaluates that span again.
CACHED_FROM_CALL = 2


@dataclass(slots=True)
class SessionResult:
    session_id: str
    spans: int = 0
    tokens: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    later_prompt_tokens: int = 0  # on the session's calls from CACHED_FROM_CALL on
    later_cached_tokens: int = 0


def run_session(
    stub: relay_pb2_grpc.TeacherServiceStub, topic: str, *, spans: int, span_tokens: int
) -> SessionResult:
    result = SessionResult(session_id=uuid.uuid4().hex)
    question = f"Write a long, detailed essay about {topic}."
    answer = ""
    for call in range(spans):
        span = relay_pb2.SpanRequest(
            session_id=result.session_id,
            request_id=uuid.uuid4().hex,
            max_tokens=span_tokens,
            text=relay_pb2.TextContext(
                messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content=question)],
                assistant_prefix=answer,
            ),
        )
        started = time.perf_counter()
        try:
            reply = stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=600)
        except grpc.RpcError:
            result.errors += 1
            continue
        result.latencies_s.append(time.perf_counter() - started)
        result.spans += 1
        result.tokens += len(reply.token_ids)
        if call >= CACHED_FROM_CALL:
            result.later_prompt_tokens += reply.usage.prompt_tokens
            result.later_cached_tokens += reply.usage.cached_prompt_tokens
        # The answer goes on (as if the student wrote a few words after the span).
        answer += reply.text + (" Also," if reply.finish_reason else " and")
    return result


def run_level(
    stub: relay_pb2_grpc.TeacherServiceStub, sessions: int, *, spans: int, span_tokens: int
) -> tuple[list[SessionResult], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        results = list(
            pool.map(
                lambda topic: run_session(stub, topic, spans=spans, span_tokens=span_tokens),
                [TOPICS[i % len(TOPICS)] for i in range(sessions)],
            )
        )
    return results, time.perf_counter() - started


def lost_accounting(stub: relay_pb2_grpc.TeacherServiceStub, results: list[SessionResult]) -> int:
    lost = 0
    for result in results:
        usage = stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id=result.session_id), timeout=30
        ).usage
        lost += (usage.spans, usage.generated_tokens) != (result.spans, result.tokens)
    return lost


def start_teacher(engine: str, passed: list[str], workdir: Path) -> tuple[subprocess.Popen, str]:
    ready = workdir / "ready"
    command = [find_teacher_executable(), "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--ready-file", str(ready), "--engine", engine]
    if engine == "llama.cpp":
        command += LLAMA_CPP_DEFAULTS
    command += passed  # last: overrides the defaults above
    log = (workdir / "teacher.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"the teacher did not start:\n{(workdir / 'teacher.log').read_text()[-2000:]}")
        time.sleep(0.1)
    return process, ready.read_text()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    argv = sys.argv[1:]
    passed = argv[argv.index("--") + 1 :] if "--" in argv else []
    ours = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="llama.cpp")
    parser.add_argument("--spans", type=int, default=4, help="spans per session")
    parser.add_argument("--span-tokens", type=int, default=32)
    parser.add_argument("--levels", default="1,4,8,16", help="concurrent sessions to measure")
    args = parser.parse_args(ours)
    levels = [int(level) for level in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="teacher-throughput-") as workdir:
        process, address = start_teacher(args.engine, passed, Path(workdir))
        try:
            with grpc.insecure_channel(address) as channel:
                stub = relay_pb2_grpc.TeacherServiceStub(channel)
                run_level(stub, 1, spans=1, span_tokens=4)  # warm-up
                figures: dict[str, object] = {"engine": args.engine, "teacher_args": passed}
                rates: dict[int, float] = {}
                for level in levels:
                    results, wall_s = run_level(
                        stub, level, spans=args.spans, span_tokens=args.span_tokens
                    )
                    rates[level] = sum(r.tokens for r in results) / wall_s
                    figures[f"tok_s_{level}"] = round(rates[level], 1)
                    figures[f"errors_{level}"] = sum(r.errors for r in results)
                    if level == 8:
                        latencies = [s for r in results for s in r.latencies_s]
                        figures["span_latency_p50_s_8"] = round(statistics.median(latencies), 3)
                        figures["span_latency_p99_s_8"] = round(percentile(latencies, 0.99), 3)
                    if level == 16:
                        prompt = sum(r.later_prompt_tokens for r in results)
                        cached = sum(r.later_cached_tokens for r in results)
                        figures["cached_share_16"] = round(cached / max(prompt, 1), 4)
                        figures["lost_accounting_16"] = lost_accounting(stub, results)
                for level in levels:
                    figures[f"ratio_{level}_to_1"] = round(rates[level] / rates[levels[0]], 2)
        finally:
            process.terminate()
            process.wait(timeout=60)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
