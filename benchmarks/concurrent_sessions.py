"""Concurrent sessions on one teacher (loopback, llama.cpp engine): errors and lost accounting.

Starts `relay-teacher serve` on the student's GGUF, runs `--sessions` sessions at once, each
asking for `--spans` spans over a growing context, then compares every session's
GetSessionUsage with what its client received. Prints one JSON line.

    python -m benchmarks.concurrent_sessions [--sessions 16] [--spans 4] [--span-tokens 8]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from edge_client.errors import TeacherCallError
from edge_client.teacher.client import SpanQuery
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2, relay_pb2_grpc


@dataclass(slots=True)
class SessionResult:
    session_id: str
    spans: int = 0
    tokens: int = 0
    errors: int = 0


def run_session(
    client: GrpcTeacherClient, prompt: list[int], fingerprint: str, *, spans: int, span_tokens: int
) -> SessionResult:
    result = SessionResult(session_id=uuid.uuid4().hex)
    context = list(prompt)
    for _ in range(spans):
        try:
            reply = client.generate_span(
                SpanQuery(
                    session_id=result.session_id,
                    request_id=uuid.uuid4().hex,
                    max_tokens=span_tokens,
                    sampling=SamplingParams(),
                    token_ids=tuple(context),
                    tokenizer_fingerprint=fingerprint,
                )
            )
        except TeacherCallError:
            result.errors += 1
            continue
        result.spans += 1
        result.tokens += len(reply.token_ids)
        context += reply.token_ids
        if reply.ended_answer:
            context += prompt[-3:]  # keep going: the next span starts a new line of thought
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--spans", type=int, default=4)
    parser.add_argument("--span-tokens", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    tokenizer = GgufModel(smollm2_path(), n_ctx=512)
    prompts = [
        tokenizer.render_chat([ChatMessage("user", f"Tell me fact number {i} about the sea.")])
        for i in range(args.sessions)
    ]
    with start_local_teacher(model=smollm2_path(), slots=args.slots) as teacher:
        client = GrpcTeacherClient(teacher.address)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.sessions) as pool:
            results = list(
                pool.map(
                    lambda prompt: run_session(
                        client,
                        prompt,
                        tokenizer.fingerprint,
                        spans=args.spans,
                        span_tokens=args.span_tokens,
                    ),
                    prompts,
                )
            )
        elapsed = time.perf_counter() - started
        client.close()
        with grpc.insecure_channel(teacher.address) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            lost = 0
            for result in results:
                usage = stub.GetSessionUsage(
                    relay_pb2.GetSessionUsageRequest(session_id=result.session_id)
                ).usage
                lost += (usage.spans, usage.generated_tokens) != (result.spans, result.tokens)
    print(
        json.dumps(
            {
                "sessions": args.sessions,
                "spans": sum(r.spans for r in results),
                "errors": sum(r.errors for r in results),
                "sessions_with_lost_accounting": lost,
                "teacher_tokens": sum(r.tokens for r in results),
                "wall_s": round(elapsed, 2),
                "tokens_per_s": round(sum(r.tokens for r in results) / elapsed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
