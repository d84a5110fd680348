"""Randomized scenarios for the soak, drawn from a seed: the same seed, the same scenario.

A scenario is 1 to 32 sessions calling the teacher at once, each a few calls in a row as a
relay makes them (its context grows by the span it got, or goes back to a shorter prefix), in
token or text mode. Calls are plain or streamed, greedy or sampled; some streams are cancelled
at a random point, some calls get a deadline that passes during prefill, some request ids are
sent again (after the answer, or twice at once), and malformed requests are mixed in. Half the
sessions start at once, the others up to 3 s later, while those prefill or decode. Sessions of
earlier scenarios come back (their KV prefix evicted meanwhile, or not). Pure: no gRPC.

    plan = draw_scenario(seed=7, limits=SoakLimits(max_context_tokens=480,
                                                   max_span_tokens=32, keys=2))
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class CallKind(str, Enum):
    UNARY = "unary"  # GenerateSpan
    STREAM = "stream"  # StreamSpan, read to the end
    CANCELLED = "cancelled"  # StreamSpan, cancelled after `cancel_after` messages
    PREFILL_DEADLINE = "prefill_deadline"  # a long context with a deadline of milliseconds
    REPLAY = "replay"  # answered, then the same request_id again: replayed
    DUPLICATE = "duplicate"  # the same request_id twice at once: generated once
    MALFORMED = "malformed"  # refused (`malformation` says how)


# How a malformed request is wrong; each is INVALID_ARGUMENT but `no_key` (UNAUTHENTICATED).
MALFORMATIONS = (
    "empty_tokens",
    "wrong_fingerprint",
    "huge_fingerprint",
    "out_of_vocabulary",
    "context_too_long",
    "max_tokens_zero",
    "max_tokens_over",
    "bad_temperature",
    "bad_top_p",
    "no_context",
    "empty_messages",
    "no_role",
    "bad_session_id",
    "header_mismatch",
    "reused_request_id",
    "garbage_bytes",
    "no_key",
    "draft_in_text_mode",
    "empty_draft",
    "bad_draft_min_prob",
    "draft_out_of_vocabulary",
    "draft_too_long",
)

_KINDS = (
    (CallKind.UNARY, 30),
    (CallKind.STREAM, 20),
    (CallKind.CANCELLED, 12),
    (CallKind.PREFILL_DEADLINE, 6),
    (CallKind.REPLAY, 8),
    (CallKind.DUPLICATE, 6),
    (CallKind.MALFORMED, 18),
)


@dataclass(frozen=True, slots=True)
class SoakLimits:
    max_context_tokens: int
    max_span_tokens: int
    keys: int  # API keys the teacher knows; sessions are spread over them
    max_sessions: int = 32


@dataclass(frozen=True, slots=True)
class CallPlan:
    kind: CallKind
    context_tokens: int  # token mode: the context's length; text mode: words to add
    shorten: bool  # go back to a prefix of the context first (as after an edit)
    max_tokens: int
    greedy: bool
    seed: int  # for sampling and for drawing the context's new tokens
    stop_at_line_end: bool
    cancel_after: int = 0  # CANCELLED: stream messages read before cancelling
    deadline_ms: float = 0.0  # PREFILL_DEADLINE
    malformation: str = ""  # MALFORMED


@dataclass(frozen=True, slots=True)
class SessionPlan:
    index: int  # a new session's number in the scenario, or -1 for one that comes back
    token_mode: bool
    key: int
    calls: tuple[CallPlan, ...]
    start_after_s: float  # sessions arrive while others are prefilling or decoding


@dataclass(frozen=True, slots=True)
class ScenarioPlan:
    seed: int
    sessions: tuple[SessionPlan, ...]  # called at once
    resumed: int  # how many of them are sessions of earlier scenarios


def draw_scenario(*, seed: int, limits: SoakLimits) -> ScenarioPlan:
    draw = random.Random(seed)
    # Often a few sessions, often a batch's worth, sometimes up to the most.
    size = draw.random()
    if size < 0.4:
        count = draw.randint(1, 4)
    elif size < 0.8:
        count = draw.randint(5, min(16, limits.max_sessions))
    else:
        count = draw.randint(min(17, limits.max_sessions), limits.max_sessions)
    resumed = draw.randint(0, count // 3)
    sessions = tuple(
        SessionPlan(
            index=-1 if number < resumed else number,
            token_mode=draw.random() < 0.7,
            key=draw.randrange(limits.keys),
            calls=tuple(_call(draw, limits) for _ in range(draw.randint(1, 4))),
            start_after_s=draw.choice([0.0, draw.uniform(0, 3)]),
        )
        for number in range(count)
    )
    return ScenarioPlan(seed=seed, sessions=sessions, resumed=resumed)


def _call(draw: random.Random, limits: SoakLimits) -> CallPlan:
    kind = draw.choices([kind for kind, _ in _KINDS], weights=[w for _, w in _KINDS])[0]
    max_context = limits.max_context_tokens
    if kind is CallKind.PREFILL_DEADLINE:
        length = draw.randint(max_context // 2, max_context)  # long: prefill takes a while
    elif draw.random() < 0.15:
        length = draw.choice([1, 2, max_context - 1, max_context])  # the edges
    else:
        length = draw.randint(1, max_context)
    max_tokens = draw.choice([1, limits.max_span_tokens, draw.randint(1, limits.max_span_tokens)])
    return CallPlan(
        kind=kind,
        context_tokens=length,
        shorten=draw.random() < 0.15,
        max_tokens=max_tokens,
        greedy=draw.random() < 0.6,
        seed=draw.randrange(1 << 31),
        stop_at_line_end=draw.random() < 0.1,
        cancel_after=draw.randint(0, max_tokens) if kind is CallKind.CANCELLED else 0,
        deadline_ms=draw.uniform(1, 50) if kind is CallKind.PREFILL_DEADLINE else 0.0,
        malformation=draw.choice(MALFORMATIONS) if kind is CallKind.MALFORMED else "",
    )
