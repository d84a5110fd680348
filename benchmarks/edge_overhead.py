"""Edge overhead: relay loop (teacher-free, every event written to a ledger) tokens/s ÷ bare
`Llama.generate` tokens/s, and time to first token for a 1,000-token prompt, relay ÷ bare.

Same model, prompt, greedy decoding and token count; decoding is timed from the first
generated token to the last (prompt evaluation excluded on both sides), time to first token
from the start of the answer (prompt rendering and evaluation included). The rounds alternate
so machine noise hits both sides alike. Prints one JSON line.

`--policy` gives the relay loop a confidence, entropy or router policy: with no teacher it
calls no one, but reads its signal at every token (the router: the student's hidden state,
scored by the MLP), so the ratio includes that signal's cost. Such a run also times the
loop with the never policy in the same rounds: `overhead` is never's tokens/s ÷ the policy's
(the router's target: ≤ 1.05).

    python -m benchmarks.edge_overhead [--tokens 128] [--rounds 5] [--student PATH] [--exact]
                                       [--policy never|confidence|entropy|router]
                                       [--router PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_client.ledger.store import Ledger
from edge_client.policies.base import Policy
from edge_client.policies.baselines import NeverPolicy
from edge_client.policies.confidence import ConfidencePolicy
from edge_client.policies.entropy import EntropyPolicy
from edge_client.policies.router import RouterPolicy
from edge_client.relay.events import TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.router.model import RouterModel
from edge_client.student.llama_student import LlamaStudent
from relay_common.chat import ChatMessage

PROMPT = [ChatMessage("user", "Write a long story about a lighthouse keeper and the sea.")]
LONG_PROMPT_TOKENS = 1000
POLICIES: dict[str, Callable[[RouterModel | None], Policy]] = {
    "never": lambda router: NeverPolicy(),
    "confidence": lambda router: ConfidencePolicy(threshold=0.5, span=8),
    "entropy": lambda router: EntropyPolicy(bound=1.0, span=8),
    "router": lambda router: RouterPolicy(router=router, threshold=0.5, span=8),  # type: ignore[arg-type]
}


def bare_generate(student: LlamaStudent, prompt: list[int], tokens: int) -> float:
    """Tokens/s of llama-cpp-python's own generation loop."""
    student.set_hidden_states(False)  # as a router relay round may have left it
    student.model.reset()
    stamps = []
    for _ in student.model.llama.generate(prompt, temp=0.0, top_k=1):
        stamps.append(time.perf_counter())
        if len(stamps) == tokens:
            break
    student.model.reset()
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def relay_session(
    student: LlamaStudent, tokens: int, ledger: Ledger, policy: Policy
) -> RelaySession:
    session = RelaySession(
        student=student, teacher=None, policy=policy, options=RelayOptions(max_tokens=tokens)
    )
    ledger.start_session(
        session.session_id, student_model=student.model_name, teacher="none", policy=policy.name
    )
    return session


def relay_loop(student: LlamaStudent, tokens: int, ledger: Ledger, policy: Policy) -> float:
    """Tokens/s of the relay loop, teacher-free, each event recorded as the CLI does."""
    student.model.reset()
    session = relay_session(student, tokens, ledger, policy)
    stamps = []
    for event in session.answer(PROMPT):
        ledger.record(session.session_id, event)
        if isinstance(event, TokensAppended):
            stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def long_question(student: LlamaStudent) -> list[ChatMessage]:
    """A user message whose prompt is about LONG_PROMPT_TOKENS tokens."""
    words = "The keeper climbs the stairs and lights the lamp before the storm. " * 200
    text = student.model.detokenize(student.tokenize(words)[: LONG_PROMPT_TOKENS - 20]).decode()
    return [ChatMessage("user", text + " What happens next?")]


def bare_first_token_s(student: LlamaStudent, prompt: list[int]) -> float:
    student.set_hidden_states(False)
    student.model.reset()
    started = time.perf_counter()
    next(iter(student.model.llama.generate(prompt, temp=0.0, top_k=1)))
    elapsed = time.perf_counter() - started
    student.model.reset()
    return elapsed


def relay_first_token_s(
    student: LlamaStudent, messages: list[ChatMessage], ledger: Ledger, policy: Policy
) -> float:
    student.model.reset()
    session = relay_session(student, 1, ledger, policy)
    started = time.perf_counter()
    for event in session.answer(messages):
        ledger.record(session.session_id, event)
        if isinstance(event, TokensAppended):
            return time.perf_counter() - started
    raise RuntimeError("the relay loop wrote no token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--student", default=None)
    parser.add_argument("--exact", action="store_true", help="batch-invariant (n_ubatch 1)")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="never")
    parser.add_argument("--router", type=Path, default=None, help="router file (--policy router)")
    parser.add_argument("--threads", type=int, default=None, help="decoding threads")
    args = parser.parse_args()
    student = LlamaStudent(args.student, n_ubatch=1 if args.exact else 512, n_threads=args.threads)
    router = None
    if args.policy == "router":
        if args.router is None:
            parser.error("--policy router needs --router PATH")
        router = RouterModel.load(args.router)
        router.check_student(fingerprint=student.fingerprint, hidden_size=student.hidden_size)
    prompt = student.render_prompt(PROMPT)
    question = long_question(student)
    long_prompt = student.render_prompt(question)
    bare, relay, never, bare_ttft, relay_ttft = [], [], [], [], []
    with tempfile.TemporaryDirectory() as workdir, Ledger(Path(workdir) / "ledger.db") as ledger:
        for _ in range(args.rounds):
            bare.append(bare_generate(student, prompt, args.tokens))
            relay.append(relay_loop(student, args.tokens, ledger, POLICIES[args.policy](router)))
            if args.policy != "never":
                never.append(relay_loop(student, args.tokens, ledger, NeverPolicy()))
            bare_ttft.append(bare_first_token_s(student, long_prompt))
            relay_ttft.append(
                relay_first_token_s(student, question, ledger, POLICIES[args.policy](router))
            )
    result = {
        "model": student.model_name,
        "exact": args.exact,
        "policy": args.policy,
        "threads": args.threads,
        "tokens": args.tokens,
        "rounds": args.rounds,
        "bare_tok_s": round(statistics.median(bare), 1),
        "relay_tok_s": round(statistics.median(relay), 1),
        "ratio": round(statistics.median(relay) / statistics.median(bare), 3),
        "prompt_tokens": len(long_prompt),
        "bare_ttft_s": round(statistics.median(bare_ttft), 3),
        "relay_ttft_s": round(statistics.median(relay_ttft), 3),
        "ttft_ratio": round(statistics.median(relay_ttft) / statistics.median(bare_ttft), 3),
    }
    if never:
        result["never_tok_s"] = round(statistics.median(never), 1)
        result["overhead"] = round(statistics.median(never) / statistics.median(relay), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
