"""A relay on one machine: the student's and the local teacher's tokens/s inside the relay ÷
each one's tokens/s alone, measured in one run.

The student and a local teacher (`relay-teacher serve`, started as `relay-edge` starts one)
take turns on the same cores; neither should slow the other. For each question, in turn:

1. student alone: the student answers teacher-free (the teacher process idles);
2. relay: the student answers with the confidence policy, calling the teacher;
3. teacher alone: the relay's teacher calls again, in order, in a fresh session (the same
   prompts, the same cache hits), while the student idles.

Student tokens/s counts its own decodes (one token per llama.cpp call); teacher tokens/s is
span tokens over the edge-measured time of the calls. The three phases follow each other
closely, question by question, so noise from other work on the machine hits them alike. The
threshold is higher than an evaluation's so that the teacher's figure rests on many calls.
Prints one JSON line. `GOMP_SPINCOUNT=300000` in the environment measures with libgomp's own
spinning instead of the project's (see relay_common/llama_import.py). `--pair embedded` (the
SmolLM2 student, the Gemma teacher) runs without the Qwen pair installed; give it
`--threshold 0.3`, as SmolLM2 is unsure of most tokens at 0.8.

    python -m benchmarks.one_machine_relay [--pair qwen2.5-coder|embedded] [--rounds 2]
                                           [--tokens 128] [--threshold 0.8] [--span 8]
                                           [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_client.policies.base import Policy
from edge_client.policies.baselines import NeverPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.client import SpanQuery, SpanReply, TeacherClient
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common import qwen_pair
from relay_common.chat import ChatMessage
from relay_common.embedded import gemma3_path, smollm2_path
from relay_common.llama_import import SPIN_ROUNDS

QUESTIONS = [
    "A baker makes 24 muffins in the morning and 3 times as many in the afternoon. She sells "
    "70 of them. How many muffins are left? Reason step by step.",
    "Tom reads 12 pages a day for 5 days and then 20 pages a day for 3 days. How many pages "
    "did he read in all? Reason step by step.",
]
# A busy shared machine can stretch a call far beyond its usual time; a fallback would skew
# the figures.
PATIENT = TeacherClientSettings(deadline_s=300, latency_budget_s=600)


@dataclass(slots=True)
class Throughput:
    tokens: int = 0
    seconds: float = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.tokens += tokens
        self.seconds += seconds

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds


@dataclass(slots=True)
class TimedStudent:
    """The student, timing each llama.cpp call that decodes one token (its own tokens)."""

    student: LlamaStudent
    decodes: Throughput = field(default_factory=Throughput)

    def __getattr__(self, name: str) -> object:
        return getattr(self.student, name)

    def append(self, tokens: Sequence[int]) -> None:
        started = time.perf_counter()
        self.student.append(tokens)
        if len(tokens) == 1:
            self.decodes.add(1, time.perf_counter() - started)


@dataclass(slots=True)
class RecordingTeacher:
    """A teacher client that keeps each call's query and times its span."""

    client: TeacherClient
    spans: Throughput = field(default_factory=Throughput)
    queries: list[SpanQuery] = field(default_factory=list)

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def generate_span(self, request: SpanQuery, **kwargs: object) -> SpanReply:
        started = time.perf_counter()
        reply = self.client.generate_span(request, **kwargs)
        self.spans.add(len(reply.token_ids), time.perf_counter() - started)
        self.queries.append(request)
        return reply


def answer(
    student: TimedStudent,
    teacher: RecordingTeacher | None,
    policy: Policy,
    question: str,
    *,
    tokens: int,
) -> None:
    student.student.model.reset()
    session = RelaySession(
        student=student,  # type: ignore[arg-type]  # a StudentEngine by delegation
        teacher=teacher,  # type: ignore[arg-type]  # a TeacherClient by delegation
        policy=policy,
        options=RelayOptions(max_tokens=tokens),
    )
    for _ in session.answer([ChatMessage("user", question)]):
        pass


def replay(teacher: RecordingTeacher, queries: Sequence[SpanQuery]) -> None:
    """The calls again, in order, in a fresh session each: the teacher's tokens/s alone."""
    sessions: dict[str, str] = {}
    for query in queries:
        session_id = sessions.setdefault(query.session_id, uuid.uuid4().hex)
        teacher.generate_span(replace(query, session_id=session_id, request_id=uuid.uuid4().hex))


def pair_paths(pair: str) -> tuple[Path, Path]:
    if pair == "embedded":
        return smollm2_path(), gemma3_path()
    return qwen_pair.student_path(), qwen_pair.teacher_path()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=["qwen2.5-coder", "embedded"], default="qwen2.5-coder")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--span", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="the student's threads")
    args = parser.parse_args()
    student_path, teacher_path = pair_paths(args.pair)
    student = TimedStudent(LlamaStudent(student_path, n_threads=args.threads))
    student_alone, student_relay = Throughput(), Throughput()
    teacher_alone, teacher_relay = Throughput(), Throughput()
    calls = 0
    with start_local_teacher(model=teacher_path) as local:
        teacher = RecordingTeacher(GrpcTeacherClient(local.address, settings=PATIENT))
        for _ in range(args.rounds):
            for question in QUESTIONS:
                student.decodes = student_alone
                answer(student, None, NeverPolicy(), question, tokens=args.tokens)
                student.decodes, teacher.spans = student_relay, teacher_relay
                teacher.queries.clear()
                policy = ConfidencePolicy(threshold=args.threshold, span=args.span)
                answer(student, teacher, policy, question, tokens=args.tokens)
                queries, teacher.spans = list(teacher.queries), teacher_alone
                replay(teacher, queries)
                calls += len(queries)
        teacher.client.close()
    student.close()
    print(
        json.dumps(
            {
                "pair": args.pair,
                "spin_setting": os.environ.get("GOMP_SPINCOUNT")
                or os.environ.get("OMP_WAIT_POLICY")
                or f"{SPIN_ROUNDS} (the project's)",
                "threads": args.threads,
                "rounds": args.rounds,
                "teacher_calls": calls,
                "teacher_tokens": teacher_relay.tokens,
                "student_tokens": student_relay.tokens,
                "student_alone_tok_s": round(student_alone.tok_s, 1),
                "student_relay_tok_s": round(student_relay.tok_s, 1),
                "student_ratio": round(student_relay.tok_s / student_alone.tok_s, 3),
                "teacher_alone_tok_s": round(teacher_alone.tok_s, 1),
                "teacher_relay_tok_s": round(teacher_relay.tok_s, 1),
                "teacher_ratio": round(teacher_relay.tok_s / teacher_alone.tok_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
