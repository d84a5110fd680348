"""Edge overhead: relay loop (teacher-free) tokens/s ÷ bare `Llama.generate` tokens/s.

Same model, prompt, greedy decoding and token count, timed from the first generated token to
the last (prompt evaluation excluded on both sides); the rounds alternate so machine noise
hits both sides alike. Prints one JSON line.

    python -m benchmarks.edge_overhead [--tokens 128] [--rounds 5] [--student PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from edge_client.policies.baselines import NeverPolicy
from edge_client.relay.events import TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from relay_common.chat import ChatMessage

PROMPT = [ChatMessage("user", "Write a long story about a lighthouse keeper and the sea.")]


def bare_generate(student: LlamaStudent, prompt: list[int], tokens: int) -> float:
    """Tokens/s of llama-cpp-python's own generation loop."""
    student.model.reset()
    stamps = []
    for _ in student.model.llama.generate(prompt, temp=0.0, top_k=1):
        stamps.append(time.perf_counter())
        if len(stamps) == tokens:
            break
    student.model.reset()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def relay_loop(student: LlamaStudent, prompt: list[int], tokens: int) -> float:
    """Tokens/s of the relay loop, teacher-free."""
    student.model.reset()
    session = RelaySession(
        student=student, teacher=None, policy=NeverPolicy(), options=RelayOptions(max_tokens=tokens)
    )
    stamps = []
    for event in session.answer(PROMPT):
        if isinstance(event, TokensAppended):
            stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--student", default=None)
    args = parser.parse_args()
    student = LlamaStudent(args.student)
    prompt = student.render_prompt(PROMPT)
    bare, relay = [], []
    for _ in range(args.rounds):
        bare.append(bare_generate(student, prompt, args.tokens))
        relay.append(relay_loop(student, prompt, args.tokens))
    result = {
        "model": student.model_name,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "bare_tok_s": round(statistics.median(bare), 1),
        "relay_tok_s": round(statistics.median(relay), 1),
        "ratio": round(statistics.median(relay) / statistics.median(bare), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
