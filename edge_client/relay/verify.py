"""The teacher-verified relay (the verify policy): the student drafts, the teacher checks each
draft of `draft` tokens in one pass and rewrites it from the first token it rejects. Pure logic
over the StudentEngine and TeacherClient interfaces, like the rest of the relay loop.

    verifier = DraftVerifier(student=..., teacher=..., checks=policy.draft_checks, ...)
    reason = yield from verifier.run(answer)

The student keeps drafting while a check is in flight (on a thread of its own), up to `window`
tokens past it. Drafted tokens are held back until their check returns, so the user and the
ledger see only checked tokens and nothing is ever taken back:
- accepted: they join the answer as student tokens, then the check's TeacherCall follows;
- rejected from token j on: the answer takes the first j, the TeacherCall, then the teacher's
  span; the student drops its other drafts and evaluates only the span's tokens;
- no verdict (the teacher unreachable, or refusing): after the failed TeacherCall the draft
  stands, as a fallback span (the student's own answer).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from edge_client.errors import TeacherCallError
from edge_client.policies.base import DraftChecks
from edge_client.relay.answer import AnswerState
from edge_client.relay.events import (
    AnswerEndReason,
    CallOutcome,
    RelayEvent,
    Source,
    TeacherCall,
    call_outcome,
)
from edge_client.student.engine import StudentEngine
from edge_client.teacher.client import Draft, SpanQuery, SpanReply, TeacherClient
from relay_common.sampling import Sampler

Events = Generator[RelayEvent, None, AnswerEndReason | None]
# (answer, span tokens, request_id, draft) -> the query; TeacherCallError when it cannot go.
BuildQuery = Callable[[AnswerState, int, str, Draft], SpanQuery]
# The reply's span as student token ids; TeacherCallError when it has none.
SpanTokens = Callable[[SpanReply], list[int]]

# How often the wait for a check looks at the answer's cancel event.
_CANCEL_CHECK_S = 0.05


class DraftVerifier:
    """Writes an answer from drafts the teacher checks (one answer at a time)."""

    def __init__(
        self,
        *,
        student: StudentEngine,
        teacher: TeacherClient,
        checks: DraftChecks,
        sampler: Sampler,
        cancel: threading.Event,
        build_query: BuildQuery,
        span_tokens: SpanTokens,
    ) -> None:
        self.student = student
        self.teacher = teacher
        self.checks = checks
        self.sampler = sampler
        self.cancel = cancel
        self._build_query = build_query
        self._span_tokens = span_tokens
        # Drafted and not yet in the answer. The student evaluated them all but an
        # end-of-answer token, which may come last: the teacher checks it like the others.
        self._drafted: list[int] = []

    def run(self, answer: AnswerState) -> Events:
        """Drafts and checks until the answer ends; returns why it ended."""
        self._drafted = []
        check: _Check | None = None
        try:
            while True:
                if check is None:
                    if self.cancel.is_set():
                        return AnswerEndReason.CANCELLED
                    may_draft = self._may_draft(answer)
                    if self._drafted and (len(self._drafted) >= self.checks.draft or not may_draft):
                        check = self._send(answer)
                    elif may_draft:
                        self._draft_one()
                    else:
                        return self._stop_reason(answer)
                    continue
                ahead = len(self._drafted) - check.size
                if (
                    not check.done
                    and not self.cancel.is_set()
                    and ahead < self.checks.window
                    and self._may_draft(answer)
                ):
                    self._draft_one()
                    continue
                check.wait(self.cancel)
                reason = yield from self._settle(answer, check)
                check = None
                if reason is not None:
                    return reason
                if answer.reached_stop():
                    return AnswerEndReason.STOP_STRING
        finally:
            if check is not None:  # the answer's consumer stopped while a check was out
                check.abandon()

    def _may_draft(self, answer: AnswerState) -> bool:
        if self._drafted and self.student.is_end(self._drafted[-1]):
            return False
        return (
            answer.generated + len(self._drafted) < answer.options.max_tokens
            and self.student.context_room() > 0
        )

    def _stop_reason(self, answer: AnswerState) -> AnswerEndReason:
        if answer.generated >= answer.options.max_tokens:
            return AnswerEndReason.MAX_TOKENS
        return AnswerEndReason.CONTEXT_FULL

    def _draft_one(self) -> None:
        token = self.sampler.sample(self.student.next_logits())
        if not self.student.is_end(token):
            self.student.append([token])
        self._drafted.append(token)

    def _send(self, answer: AnswerState) -> _Check:
        """Starts the check of the next draft on its own thread (or records why it cannot)."""
        draft = Draft(
            token_ids=tuple(self._drafted[: self.checks.draft]), min_prob=self.checks.accept_prob
        )
        check = _Check(size=len(draft.token_ids), request_id=uuid.uuid4().hex)
        try:
            query = self._build_query(answer, self.checks.span, check.request_id, draft)
        except TeacherCallError as exc:
            check.error = exc
            return check
        check.start(self.teacher, query)
        return check

    def _settle(self, answer: AnswerState, check: _Check) -> Events:
        """Puts the checked draft, and the teacher's span, into the answer."""
        draft = self._drafted[: check.size]
        reply, error = check.reply, check.error
        span: list[int] = []
        if error is None and reply is not None:
            try:
                span = self._span_tokens(reply)
                if not 0 <= reply.accepted_draft_tokens <= len(draft):
                    raise TeacherCallError(
                        f"the teacher accepted {reply.accepted_draft_tokens} tokens of a "
                        f"{len(draft)}-token draft"
                    )
                if reply.accepted_draft_tokens < len(draft) and not (span or reply.ended_answer):
                    # Drafting on would only meet the same rejection again.
                    raise TeacherCallError("the teacher rejected the draft and wrote nothing")
            except TeacherCallError as exc:
                error = exc
        if error is not None or reply is None:
            assert error is not None  # a check ends with a reply or an error
            return (yield from self._draft_stands(answer, check, draft, error))
        accepted = reply.accepted_draft_tokens
        yield from self._release(answer, Source.STUDENT, draft[:accepted])
        if accepted == len(draft):
            del self._drafted[:accepted]
            yield answer.record(self._call(check, reply, received=0))
            return AnswerEndReason.END_OF_ANSWER if self._ends(draft) else None
        # Rejected from `accepted` on: the student forgets its drafts from there and takes the
        # span, evaluating only its tokens (the answer so far is in its KV cache).
        forgotten = sum(not self.student.is_end(token) for token in self._drafted[accepted:])
        self._drafted = []
        room = min(
            answer.options.max_tokens - answer.generated, self.student.context_room() + forgotten
        )
        clipped = len(span) > room
        span = span[: max(room, 0)]
        yield answer.record(self._call(check, reply, received=len(span)))
        if span:  # none: the teacher ended the answer there, or it has no room left
            self.student.sync([*answer.teacher_context, *span])
            answer.generated += len(span)
            text = answer.decoder.decode(self.student.detokenize(span))
            yield answer.append(Source.TEACHER, span, text)
        answer.last_call_end = answer.generated
        return AnswerEndReason.END_OF_ANSWER if reply.ended_answer and not clipped else None

    def _draft_stands(
        self, answer: AnswerState, check: _Check, draft: list[int], error: TeacherCallError
    ) -> Events:
        """No verdict: the student's draft stays as written, a fallback span."""
        outcome = call_outcome(error)
        yield answer.record(
            TeacherCall(
                requested=self.checks.span,
                received=0,
                retries=error.retries,
                latency_ms=error.latency_ms,
                wire_bytes=error.wire_bytes,
                error=str(error),
                outcome=outcome,
                request_id=check.request_id if error.sent else "",
                draft_tokens=len(draft),
            )
        )
        if outcome is CallOutcome.CANCELLED:
            return AnswerEndReason.CANCELLED
        del self._drafted[: len(draft)]
        yield from self._release(answer, Source.FALLBACK, draft)
        answer.last_call_end = answer.generated
        return AnswerEndReason.END_OF_ANSWER if self._ends(draft) else None

    def _release(self, answer: AnswerState, source: Source, draft: Sequence[int]) -> Events:
        """Drafted tokens (in the student's KV cache already) join the answer."""
        tokens = [token for token in draft if not self.student.is_end(token)]
        if tokens:
            answer.generated += len(tokens)
            text = answer.decoder.decode(self.student.detokenize(tokens))
            yield answer.append(source, tokens, text)
        return None

    def _ends(self, draft: Sequence[int]) -> bool:
        return bool(draft) and self.student.is_end(draft[-1])

    def _call(self, check: _Check, reply: SpanReply, *, received: int) -> TeacherCall:
        return TeacherCall(
            requested=self.checks.span,
            received=received,
            retries=reply.retries,
            latency_ms=reply.latency_ms,
            wire_bytes=reply.wire_bytes,
            request_id=check.request_id,
            teacher_usage=reply.teacher_usage,
            draft_tokens=check.size,
            accepted_draft_tokens=reply.accepted_draft_tokens,
        )


@dataclass(slots=True)
class _Check:
    """One draft check: a call on a thread of its own, or an error before it was sent."""

    size: int
    request_id: str
    reply: SpanReply | None = None
    error: TeacherCallError | None = None
    _failure: BaseException | None = None  # a bug in the call: raised where the answer waits
    _thread: threading.Thread | None = None
    _stop: threading.Event | None = None

    @property
    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def start(self, teacher: TeacherClient, query: SpanQuery) -> None:
        stop = threading.Event()

        def call() -> None:
            try:
                self.reply = teacher.generate_span(query, cancel=stop)
            except TeacherCallError as exc:
                self.error = exc
            except BaseException as exc:  # raised again in `wait`, on the answer's thread
                self._failure = exc

        self._stop = stop
        self._thread = threading.Thread(target=call, name="draft-check", daemon=True)
        self._thread.start()

    def wait(self, cancel: threading.Event) -> None:
        """Until the check is over; once `cancel` is set, the call is cancelled."""
        while not self.done:
            if cancel.is_set() and self._stop is not None:
                self._stop.set()
            assert self._thread is not None
            self._thread.join(_CANCEL_CHECK_S)
        if self._failure is not None:
            raise self._failure

    def abandon(self) -> None:
        """Cancels the call in flight and waits for its thread to end."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()
