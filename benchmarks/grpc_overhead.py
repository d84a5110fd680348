"""gRPC overhead per span on loopback: edge-measured latency minus teacher compute time; and
the share of a session's later prompts the teacher served from its KV cache.

Starts `relay-teacher serve` (the student's own GGUF, token mode) on a free loopback port and
sends short spans whose context grows like a real answer's. Prints one JSON line.

    python -m benchmarks.grpc_overhead [--spans 200] [--span-tokens 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import uuid

import grpc

from edge_client.teacher.client import SpanQuery
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2, relay_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200)
    parser.add_argument("--span-tokens", type=int, default=1)
    args = parser.parse_args()
    tokenizer = GgufModel(smollm2_path(), n_ctx=512)
    context = tokenizer.render_chat([ChatMessage("user", "Tell me about the sea.")])
    overheads, latencies = [], []
    first_prompts: dict[str, int] = {}  # session -> its first call's prompt length
    with start_local_teacher(model=smollm2_path()) as teacher:
        client = GrpcTeacherClient(teacher.address)
        session_id = uuid.uuid4().hex
        for index in range(args.spans):
            if len(context) > 400:  # stay inside the context window: start a new session
                session_id, context = uuid.uuid4().hex, context[:20]
            first_prompts.setdefault(session_id, len(context))
            reply = client.generate_span(
                SpanQuery(
                    session_id=session_id,
                    request_id=uuid.uuid4().hex,
                    max_tokens=args.span_tokens,
                    sampling=SamplingParams(),
                    token_ids=tuple(context),
                    tokenizer_fingerprint=tokenizer.fingerprint,
                )
            )
            context += reply.token_ids or [tokenizer.tokenize(" the")[0]]
            if index >= 10:  # warm-up excluded
                overheads.append(reply.latency_ms - reply.compute_ms)
                latencies.append(reply.latency_ms)
        client.close()
        later_prompt, later_cached = 0, 0
        with grpc.insecure_channel(teacher.address) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            for session, first_prompt in first_prompts.items():
                usage = stub.GetSessionUsage(
                    relay_pb2.GetSessionUsageRequest(session_id=session)
                ).usage
                later_prompt += usage.prompt_tokens - first_prompt
                later_cached += usage.cached_prompt_tokens
    quantiles = statistics.quantiles(overheads, n=10)
    print(
        json.dumps(
            {
                "spans": len(overheads),
                "span_tokens": args.span_tokens,
                "latency_p50_ms": round(statistics.median(latencies), 3),
                "overhead_p50_ms": round(statistics.median(overheads), 3),
                "overhead_p90_ms": round(quantiles[8], 3),
                "later_calls_cached_share": round(later_cached / later_prompt, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
