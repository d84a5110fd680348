"""Runs soak scenarios against a teacher over gRPC and checks what must hold whatever the load:

- every call ends with a documented status code, the one its kind calls for (a malformed
  request INVALID_ARGUMENT, a cancelled stream CANCELLED, ...), and every refusal's message
  is under 1 KB;
- health stays SERVING (the caller checks that the process is still there);
- a replayed request id gives back the span it gave the first time;
- each session's usage (GetSessionUsage) and each key's (GetKeyUsage) equal the sum of the
  spans the clients received, every request id counted once (replays are not counted);
- on an exact-mode teacher, a greedy span equals what the same request gives alone, in a
  session of its own, with nothing else running.

A call refused for overload (RESOURCE_EXHAUSTED), or cancelled or past its deadline on
purpose, is sent again with the same request id until it is answered: every request id
then ends answered once, whatever happened on the teacher meanwhile, so the accounting is
exact.

    soak = Soak(channel, keys=["key-a", "key-b"], info=info, exact=True)
    await soak.run(draw_scenario(seed=1, limits=limits))
    soak.tally.violations        # [] when everything held
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.soak.malformed import malformed_call
from benchmarks.soak.scenarios import CallKind, CallPlan, ScenarioPlan, SessionPlan
from relay_common.routing import SESSION_HEADER, session_header_value
from relay_proto import relay_pb2, relay_pb2_grpc

CALL_TIMEOUT_S = 600.0  # a loaded 2-core machine with 32 sessions of long contexts
MAX_MESSAGE_BYTES = 1024
_RETRY_ATTEMPTS = 200
_GREEDY_CHECKS_PER_SCENARIO = 4
_KEPT_SESSIONS = 256  # sessions of earlier scenarios that may come back
_WORDS = [
    "river", "stone", "light", "ocean", "number", "garden", "little", "quickly", "because",
    "window", "market", "silver", "answer", "table", "mountain", "yellow", "thought", "people",
    "bridge", "winter", "count", "seven", "forty", "apple",
]  # fmt: skip
Code = grpc.StatusCode


@dataclass(slots=True)
class Totals:
    spans: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0

    def add(self, usage: relay_pb2.SpanUsage) -> None:
        self.spans += 1
        self.prompt_tokens += usage.prompt_tokens
        self.cached_prompt_tokens += usage.cached_prompt_tokens
        self.generated_tokens += usage.generated_tokens

    def matches(self, usage: relay_pb2.SessionUsage | relay_pb2.KeyUsage) -> bool:
        return (self.spans, self.prompt_tokens, self.cached_prompt_tokens) == (
            usage.spans,
            usage.prompt_tokens,
            usage.cached_prompt_tokens,
        ) and self.generated_tokens == usage.generated_tokens


@dataclass(slots=True)
class Session:
    """A session as its client sees it: its context so far and what it was served."""

    session_id: str
    key: int
    token_mode: bool
    tokens: list[int] = field(default_factory=list)  # token mode
    question: str = ""  # text mode: the user's message and the answer so far
    prefix: str = ""
    served: dict[str, tuple[int, ...]] = field(default_factory=dict)  # request id -> tokens
    totals: Totals = field(default_factory=Totals)
    requests: int = 0

    def next_request_id(self) -> str:
        self.requests += 1
        return f"r{self.requests}"


@dataclass(slots=True)
class Tally:
    scenarios: int = 0
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    greedy_checked: int = 0
    violations: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Answer:
    code: Code
    tokens: tuple[int, ...] = ()
    text: str = ""
    usage: relay_pb2.SpanUsage | None = None
    details: str = ""

    @property
    def replayed(self) -> bool:
        return self.usage is not None and self.usage.replayed


class Soak:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        keys: list[str],
        info: relay_pb2.GetInfoResponse,
        exact: bool,
    ) -> None:
        self._channel = channel
        self._stub = relay_pb2_grpc.TeacherServiceStub(channel)
        self._keys = keys
        self._info = info
        self._exact = exact
        self._key_totals = [Totals() for _ in keys]
        self._kept: list[Session] = []
        self._greedy: list[tuple[relay_pb2.SpanRequest, tuple[int, ...]]] = []
        self.tally = Tally()

    async def run(self, plan: ScenarioPlan) -> None:
        """Runs the scenario's sessions at once, then checks health, greedy spans and usage."""
        draw = random.Random(plan.seed)
        sessions = [self._session(plan.seed, session, draw) for session in plan.sessions]
        self._greedy = []
        await asyncio.gather(
            *(
                self._calls(state, session)
                for state, session in zip(sessions, plan.sessions, strict=True)
            )
        )
        await self._check_health(f"after scenario {plan.seed}")
        await self._check_greedy(draw)
        await self._check_usage(sessions)
        self._kept = (self._kept + sessions)[-_KEPT_SESSIONS:]  # those resumed were taken out
        self.tally.scenarios += 1

    # -- sessions and their calls ---------------------------------------------------------------

    def _session(self, seed: int, plan: SessionPlan, draw: random.Random) -> Session:
        if plan.index < 0 and self._kept:  # one that comes back, its prefix evicted or not
            return self._kept.pop(draw.randrange(len(self._kept)))
        question = " ".join(draw.choices(_WORDS, k=draw.randint(3, 40)))
        return Session(
            session_id=f"soak-{seed}-{plan.index}-{draw.randrange(1 << 32):08x}",
            key=plan.key,
            token_mode=plan.token_mode,
            question=question,
        )

    async def _calls(self, session: Session, plan: SessionPlan) -> None:
        await asyncio.sleep(plan.start_after_s)
        for call in plan.calls:
            await self._call(session, call)

    async def _call(self, session: Session, call: CallPlan) -> None:
        span = self._span(session, call)
        match call.kind:
            case CallKind.MALFORMED:
                await self._malformed(session, call, span)
            case CallKind.UNARY:
                await self._served(session, span, await self._unary(session, span))
            case CallKind.STREAM:
                await self._served(session, span, await self._stream(session, span))
            case CallKind.CANCELLED:
                answer = await self._stream(session, span, cancel_after=call.cancel_after)
                await self._served(session, span, answer, expected=Code.CANCELLED)
            case CallKind.PREFILL_DEADLINE:
                answer = await self._unary(session, span, timeout=call.deadline_ms / 1000)
                await self._served(session, span, answer, expected=Code.DEADLINE_EXCEEDED)
            case CallKind.REPLAY:
                first = await self._served(session, span, await self._unary(session, span))
                if first is not None:
                    for again in (
                        await self._unary(session, span),
                        await self._stream(session, span),
                    ):
                        self._same_span(again, first, span)
                        if again.code == Code.OK and not again.replayed:
                            self._violation(f"request {_name(span)} sent again was generated")
            case CallKind.DUPLICATE:
                both = await asyncio.gather(self._unary(session, span), self._unary(session, span))
                fresh = [a for a in both if a.code == Code.OK and not a.replayed]
                if len(fresh) > 1:
                    self._violation(f"request {_name(span)} sent twice at once was generated twice")
                first = await self._served(session, span, both[0])
                if first is not None and both[1].code == Code.OK:
                    self._same_span(both[1], first, span)

    def _span(self, session: Session, call: CallPlan) -> relay_pb2.SpanRequest:
        span = relay_pb2.SpanRequest(
            session_id=session.session_id,
            request_id=session.next_request_id(),
            max_tokens=call.max_tokens,
            stop_at_line_end=call.stop_at_line_end,
        )
        if not call.greedy:
            span.sampling.CopyFrom(relay_pb2.Sampling(temperature=0.8, top_p=0.95, seed=call.seed))
        draw = random.Random(call.seed)
        if session.token_mode:
            tokens = session.tokens
            if call.shorten and tokens:
                tokens = tokens[: draw.randint(1, len(tokens))]
            tokens = tokens[: call.context_tokens]
            vocabulary = self._info.vocab_size
            tokens += [draw.randrange(vocabulary) for _ in range(call.context_tokens - len(tokens))]
            session.tokens = tokens
            span.tokens.CopyFrom(
                relay_pb2.TokenContext(
                    token_ids=tokens, tokenizer_fingerprint=self._info.tokenizer_fingerprint
                )
            )
        else:
            prefix = session.prefix
            if call.shorten and prefix:
                prefix = prefix[: draw.randint(0, len(prefix))]
            words = draw.choices(_WORDS, k=1 + call.context_tokens // 40)
            session.prefix = (prefix + " " + " ".join(words)).strip()
            span.text.CopyFrom(
                relay_pb2.TextContext(
                    messages=[
                        relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content=session.question)
                    ],
                    assistant_prefix=session.prefix,
                )
            )
        return span

    async def _served(
        self,
        session: Session,
        span: relay_pb2.SpanRequest,
        answer: _Answer,
        *,
        expected: Code | None = None,
    ) -> tuple[int, ...] | None:
        """Counts a span the client received once per request id and continues the context
        with it; sends the request again, the same, until it is answered (after overload, or
        the `expected` failure the call was made for). Returns the span's tokens."""
        allowed = {Code.RESOURCE_EXHAUSTED, *([expected] if expected else [])}
        for _ in range(_RETRY_ATTEMPTS):
            if answer.code == Code.OK:
                break
            too_long = answer.code == Code.INVALID_ARGUMENT and "over the limit" in answer.details
            if too_long and not session.token_mode:  # a text context rendered too long
                session.prefix = ""  # the client starts the answer over
                return None
            if answer.code not in allowed:
                self._violation(f"request {_name(span)}: {answer.code.name}: {answer.details}")
                return None
            if answer.code == Code.RESOURCE_EXHAUSTED:
                await asyncio.sleep(random.uniform(0.2, 1.0))
            allowed = {Code.RESOURCE_EXHAUSTED}
            answer = await self._unary(session, span)
        else:
            self._violation(f"request {_name(span)} was never answered ({answer.code.name})")
            return None
        assert answer.usage is not None
        if span.request_id in session.served:
            self._same_span(answer, session.served[span.request_id], span)
        else:
            session.served[span.request_id] = answer.tokens
            session.totals.add(answer.usage)
            self._key_totals[session.key].add(answer.usage)
            if self._exact and not span.HasField("sampling") and not answer.replayed:
                self._greedy.append((span, answer.tokens))
        if session.token_mode:
            session.tokens = session.tokens + list(answer.tokens)
        else:
            session.prefix += answer.text
        return answer.tokens

    async def _malformed(
        self, session: Session, call: CallPlan, span: relay_pb2.SpanRequest
    ) -> None:
        bad = malformed_call(
            call.malformation,
            good=span,
            info=self._info,
            draw=random.Random(call.seed),
            answered_request_id=next(iter(session.served), None),
        )
        metadata = self._metadata(session, span.session_id, key=not bad.no_key)
        if bad.header is not None:
            metadata = [(k, v) for k, v in metadata if k != SESSION_HEADER]
            metadata.append((SESSION_HEADER, bad.header))
        if bad.raw is not None:
            method = self._channel.unary_unary(
                "/relay.v1.TeacherService/GenerateSpan",
                request_serializer=lambda raw: raw,
                response_deserializer=relay_pb2.GenerateSpanResponse.FromString,
            )
            answer = await self._called(method(bad.raw, metadata=metadata, timeout=CALL_TIMEOUT_S))
        else:
            assert bad.span is not None
            request = relay_pb2.GenerateSpanRequest(span=bad.span)
            call_ = self._stub.GenerateSpan(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
            answer = await self._called(call_)
        # A key at its call limit is refused before the request is read: overload, documented.
        self._expect(answer, {bad.expected, Code.RESOURCE_EXHAUSTED}, call.malformation)

    # -- one call on the wire -------------------------------------------------------------------

    def _metadata(self, session: Session, session_id: str, *, key: bool = True) -> list:
        metadata = [(SESSION_HEADER, session_header_value(session_id))] if session_id else []
        if key:
            metadata.append(("authorization", f"Bearer {self._keys[session.key]}"))
        return metadata

    async def _unary(
        self, session: Session, span: relay_pb2.SpanRequest, *, timeout: float = CALL_TIMEOUT_S
    ) -> _Answer:
        call = self._stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=span),
            metadata=self._metadata(session, span.session_id),
            timeout=timeout,
        )
        return await self._called(call)

    async def _called(self, call) -> _Answer:
        self.tally.calls += 1
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return self._failed(exc.code(), exc.details() or "")
        self.tally.codes[Code.OK.name] += 1
        return _Answer(Code.OK, tuple(reply.token_ids), reply.text, reply.usage)

    async def _stream(
        self, session: Session, span: relay_pb2.SpanRequest, *, cancel_after: int | None = None
    ) -> _Answer:
        self.tally.calls += 1
        call = self._stub.StreamSpan(
            relay_pb2.StreamSpanRequest(span=span),
            metadata=self._metadata(session, span.session_id),
            timeout=CALL_TIMEOUT_S,
        )
        tokens: list[int] = []
        texts: list[str] = []
        if cancel_after == 0:
            call.cancel()  # at once: the call may not even have reached the teacher
        try:
            async for message in call:
                tokens.extend(message.token_ids)
                texts.append(message.text)
                if message.HasField("usage"):
                    self.tally.codes[Code.OK.name] += 1
                    return _Answer(Code.OK, tuple(tokens), "".join(texts), message.usage)
                if cancel_after is not None and len(texts) >= cancel_after:
                    call.cancel()
        except asyncio.CancelledError:  # what iterating a call cancelled here raises
            pass
        except grpc.aio.AioRpcError as exc:
            return self._failed(exc.code(), exc.details() or "")
        code = await call.code()
        if code == Code.OK:
            return self._failed(Code.UNKNOWN, "the stream ended OK without its last message")
        return self._failed(code, await call.details() or "")

    def _failed(self, code: Code, details: str) -> _Answer:
        self.tally.codes[code.name] += 1
        if len(details.encode()) >= MAX_MESSAGE_BYTES:
            self._violation(f"a {code.name} message of {len(details.encode())} bytes")
        return _Answer(code, details=details)

    # -- the checks -----------------------------------------------------------------------------

    def _expect(self, answer: _Answer, codes: set[Code], what: str) -> None:
        if answer.code not in codes:
            self._violation(f"{what}: {answer.code.name} ({answer.details[:200]})")

    def _same_span(
        self, again: _Answer, first: tuple[int, ...], span: relay_pb2.SpanRequest
    ) -> None:
        if again.code == Code.OK and again.tokens != first:
            self._violation(f"request {_name(span)} gave another span when sent again")

    def _violation(self, what: str) -> None:
        self.tally.violations.append(what)

    async def _check_health(self, when: str) -> None:
        health = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=60)
        except grpc.aio.AioRpcError as exc:
            self._violation(f"health {when}: {exc.code().name}")
            return
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            self._violation(
                f"health {when}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
            )

    async def _check_greedy(self, draw: random.Random) -> None:
        """Exact mode: greedy spans served under load equal the same requests alone."""
        chosen = draw.sample(self._greedy, min(len(self._greedy), _GREEDY_CHECKS_PER_SCENARIO))
        for span, tokens in chosen:
            alone = Session(session_id=f"{_name(span)}-alone", key=0, token_mode=True)
            single = relay_pb2.SpanRequest()
            single.CopyFrom(span)
            single.session_id, single.request_id = alone.session_id, "alone"
            answer = await self._unary(alone, single)
            if answer.code != Code.OK:
                self._violation(f"greedy check {_name(span)}: {answer.code.name}: {answer.details}")
                continue
            assert answer.usage is not None
            self._key_totals[0].add(answer.usage)
            self.tally.greedy_checked += 1
            if answer.tokens != tokens:
                self._violation(
                    f"greedy span {_name(span)} under load {list(tokens)} != alone "
                    f"{list(answer.tokens)}"
                )

    async def _check_usage(self, sessions: list[Session]) -> None:
        for session in sessions:
            request = relay_pb2.GetSessionUsageRequest(session_id=session.session_id)
            try:
                usage = await self._stub.GetSessionUsage(
                    request, metadata=self._metadata(session, session.session_id), timeout=60
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == Code.NOT_FOUND and session.totals.spans == 0:
                    continue
                self._violation(f"usage of {session.session_id}: {exc.code().name}")
                continue
            if not session.totals.matches(usage.usage):
                self._violation(
                    f"usage of {session.session_id}: the teacher counts {_usage(usage.usage)}, "
                    f"the client received {session.totals}"
                )
        for key, totals in enumerate(self._key_totals):
            holder = Session(session_id="", key=key, token_mode=True)
            try:
                usage = await self._stub.GetKeyUsage(
                    relay_pb2.GetKeyUsageRequest(), metadata=self._metadata(holder, ""), timeout=60
                )
            except grpc.aio.AioRpcError as exc:
                self._violation(f"usage of key {key}: {exc.code().name}")
                continue
            if not totals.matches(usage.usage):
                self._violation(
                    f"usage of key {key}: the teacher counts {_usage(usage.usage)}, the "
                    f"clients received {totals}"
                )


def _name(span: relay_pb2.SpanRequest) -> str:
    return f"{span.session_id}/{span.request_id}"


def _usage(usage: relay_pb2.SessionUsage | relay_pb2.KeyUsage) -> str:
    return (
        f"spans={usage.spans} prompt={usage.prompt_tokens} cached={usage.cached_prompt_tokens} "
        f"generated={usage.generated_tokens}"
    )
