"""The relay loop (DESIGN §4): the student writes, the policy decides where the teacher writes
a span, a failed teacher span falls back to the student. Pure logic over the StudentEngine,
TeacherClient and Policy interfaces; it yields events and returns the answer's usage. With the
verify policy and a teacher in token mode, the teacher checks the student's drafts instead
(relay/verify.py).

    session = RelaySession(student=..., teacher=..., policy=..., options=RelayOptions())
    usage = yield from session.answer(messages)      # or: for event in session.answer(...)
    session.answer(messages, options=RelayOptions(max_tokens=64, stop=("\n\n",)))  # this once
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge_client.errors import TeacherCallError
from edge_client.policies.base import Policy, Step
from edge_client.relay.answer import AnswerState
from edge_client.relay.events import (
    AnswerEndReason,
    AnswerFinished,
    AnswerStarted,
    CallOutcome,
    RelayEvent,
    Source,
    TeacherCall,
    call_outcome,
)
from edge_client.relay.usage import Usage
from edge_client.relay.verify import DraftVerifier
from edge_client.student.engine import StudentEngine
from edge_client.teacher.client import Draft, SpanQuery, SpanReply, TeacherClient, TeacherInfo
from relay_common.chat import ChatMessage
from relay_common.errors import ContextFullError
from relay_common.line_end import LineEnd
from relay_common.sampling import Sampler, SamplingParams

Events = Generator[RelayEvent, None, AnswerEndReason | None]


@dataclass(frozen=True, slots=True)
class RelayOptions:
    max_tokens: int = 512  # generated tokens per answer, student and teacher together
    sampling: SamplingParams = field(default_factory=SamplingParams)
    # The answer ends once its visible text holds one of these (an OpenAI request's `stop`);
    # the text up to it has been yielded: a front end that must not show it holds it back.
    stop: tuple[str, ...] = ()


class RelaySession:
    """One conversation: the student's KV cache, the policy's state and the session's usage."""

    def __init__(
        self,
        *,
        student: StudentEngine,
        teacher: TeacherClient | None,
        policy: Policy,
        options: RelayOptions,
        session_id: str | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """`cancel`, once set (from another thread or a signal handler), stops the answer:
        between tokens, and at once during a teacher call (the call is cancelled)."""
        self.student = student
        self.teacher = teacher
        self.policy = policy
        self.options = options
        self.session_id = session_id or uuid.uuid4().hex
        self.cancel = cancel or threading.Event()
        self.usage = Usage()
        self._teacher_info: TeacherInfo | None = None

    @property
    def token_mode(self) -> bool | None:
        """True when spans travel as token ids; None until the teacher has been reached."""
        if self._teacher_info is None:
            return None
        return self._teacher_info.tokenizer_fingerprint == self.student.fingerprint

    def reach_teacher(self) -> bool | None:
        """Asks the teacher for its description now rather than at the first call; returns
        `token_mode`, None when there is no teacher or it cannot be reached yet."""
        if self.teacher is not None and self._teacher_info is None:
            try:
                self._teacher_info = self.teacher.info()
            except TeacherCallError:
                return None
        return self.token_mode

    def answer(
        self, messages: Sequence[ChatMessage], *, options: RelayOptions | None = None
    ) -> Generator[RelayEvent, None, Usage]:
        """Writes the assistant's answer to `messages`, yielding events as it goes; `options`
        replace the session's for this answer only."""
        options = options or self.options
        prompt = self.student.render_prompt(messages)
        answer = AnswerState(
            messages=messages,
            options=options,
            teacher_context=list(prompt),
            session_usage=self.usage,
        )
        self.policy.start_answer()
        sampler = Sampler(options.sampling)
        reason: AnswerEndReason | None = None
        try:
            self.student.set_hidden_states(self.policy.needs_hidden)
            cached = self.student.sync(prompt)
            yield answer.record(AnswerStarted(prompt_tokens=len(prompt) - cached))
            verifier = self._verifier(sampler)
            if verifier is not None:
                reason = yield from verifier.run(answer)
            while reason is None:
                reason = yield from self._step(answer, sampler)
        except ContextFullError:
            reason = AnswerEndReason.CONTEXT_FULL
        for released in self.policy.flush():
            yield answer.append(Source.STUDENT, [released.token_id], released.text)
        yield answer.record(AnswerFinished(reason=reason))
        return answer.usage

    def _verifier(self, sampler: Sampler) -> DraftVerifier | None:
        """The drafts' checker where the policy asks for one and the teacher is not known to
        be in text mode (drafts are token ids). While it cannot be reached it may be either:
        the drafts go out, and stand as the student wrote them while it stays away."""
        checks = self.policy.draft_checks
        if checks is None or self.teacher is None or self.reach_teacher() is False:
            return None
        return DraftVerifier(
            student=self.student,
            teacher=self.teacher,
            checks=checks,
            sampler=sampler,
            cancel=self.cancel,
            build_query=lambda answer, span, request_id, draft: self._span_request(
                answer, span, request_id=request_id, draft=draft
            ),
            span_tokens=self._student_tokens_of,
        )

    def _step(self, answer: AnswerState, sampler: Sampler) -> Events:
        if self.cancel.is_set():
            return AnswerEndReason.CANCELLED
        if answer.reached_stop():
            return AnswerEndReason.STOP_STRING
        remaining = answer.options.max_tokens - answer.generated
        if remaining <= 0:
            return AnswerEndReason.MAX_TOKENS
        since_call = (
            None if answer.last_call_end is None else answer.generated - answer.last_call_end
        )
        logits = self.student.next_logits()
        step = Step(
            logits=logits,
            position=answer.generated,
            tokens_since_call=since_call,
            teacher_tokens_used=self.usage.teacher_tokens,
            line_so_far=answer.visible_text.rpartition("\n")[2],
            hidden=self.student.next_hidden() if self.policy.needs_hidden else None,
        )
        wanted = self.policy.decide(step)
        # In text mode the teacher continues the visible text: a character the student has
        # only half written would be cut, so the student finishes it first.
        if (
            wanted > 0
            and self.teacher is not None
            and not (answer.mid_character and self.token_mode is False)
        ):
            return (yield from self._teacher_span(answer, sampler, min(wanted, remaining)))
        return (yield from self._student_token(answer, sampler, Source.STUDENT, logits))

    def _student_token(
        self,
        answer: AnswerState,
        sampler: Sampler,
        source: Source,
        logits: npt.NDArray[np.float32] | None = None,
    ) -> Events:
        """The student writes one token (from `logits` when the caller already read them)."""
        token = sampler.sample(self.student.next_logits() if logits is None else logits)
        if self.student.is_end(token):
            return AnswerEndReason.END_OF_ANSWER
        self.student.append([token])
        answer.generated += 1
        text = answer.decoder.decode(self.student.detokenize([token]))
        for released in self.policy.observe(token, text):
            yield answer.append(
                source, [released.token_id], released.text, command=released.command
            )
        return None

    def _teacher_span(self, answer: AnswerState, sampler: Sampler, span: int) -> Events:
        assert self.teacher is not None  # checked by the caller
        request_id = uuid.uuid4().hex
        try:
            request = self._span_request(answer, span, request_id=request_id)
            reply = self.teacher.generate_span(request, cancel=self.cancel)
            token_ids = self._student_tokens_of(reply)
        except TeacherCallError as exc:
            outcome = call_outcome(exc)
            yield answer.record(
                TeacherCall(
                    requested=span,
                    received=0,
                    retries=exc.retries,
                    latency_ms=exc.latency_ms,
                    wire_bytes=exc.wire_bytes,
                    error=str(exc),
                    outcome=outcome,
                    request_id=request_id if exc.sent else "",
                ),
            )
            if outcome is CallOutcome.CANCELLED:
                return AnswerEndReason.CANCELLED
            return (yield from self._fallback(answer, sampler, span))
        # The span was counted in teacher tokens; in text mode the student's tokens of the same
        # text may be more. Only the answer's budget and the student's context bound it.
        room = min(answer.options.max_tokens - answer.generated, self.student.context_room())
        clipped = len(token_ids) > room
        token_ids = token_ids[: max(room, 0)]
        yield answer.record(
            TeacherCall(
                requested=span,
                received=len(token_ids),
                retries=reply.retries,
                latency_ms=reply.latency_ms,
                wire_bytes=reply.wire_bytes,
                request_id=request_id,
                teacher_usage=reply.teacher_usage,
            ),
        )
        if token_ids:
            # Only the span's tokens are evaluated: the prefix is already in the KV cache.
            self.student.append(token_ids)
            answer.generated += len(token_ids)
            text = answer.decoder.decode(self.student.detokenize(token_ids))
            yield answer.append(Source.TEACHER, token_ids, text)
        answer.last_call_end = answer.generated
        if reply.ended_answer and not clipped:
            return AnswerEndReason.END_OF_ANSWER
        if not token_ids and not clipped:  # an empty span must not stall the answer
            return (yield from self._student_token(answer, sampler, Source.STUDENT))
        return None

    def _fallback(self, answer: AnswerState, sampler: Sampler, span: int) -> Events:
        """The student writes the span the teacher could not (teacher-free for `span` tokens).
        A span that was to end with its line ends there, as the teacher's would: the policy
        then decides the next line afresh."""
        line_end = LineEnd() if self.policy.span_ends_at_line else None
        for _ in range(span):
            if self.cancel.is_set():
                return AnswerEndReason.CANCELLED
            if answer.reached_stop():
                return AnswerEndReason.STOP_STRING
            seen = len(answer.visible_text)
            reason = yield from self._student_token(answer, sampler, Source.FALLBACK)
            if reason is not None:
                return reason
            if line_end is not None and line_end.ends_line(answer.visible_text[seen:]):
                break
        answer.last_call_end = answer.generated
        return None

    def _span_request(
        self, answer: AnswerState, span: int, *, request_id: str, draft: Draft | None = None
    ) -> SpanQuery:
        """The query for a span (after a check of `draft`, token mode only); TeacherCallError
        (not sent) when the teacher's limits or mode rule it out, so a request the teacher
        would refuse is never made."""
        assert self.teacher is not None
        if self._teacher_info is None:
            self._teacher_info = self.teacher.info()
        info = self._teacher_info
        common = {
            "session_id": self.session_id,
            "request_id": request_id,
            "max_tokens": min(span, info.max_span_tokens),
            "sampling": answer.options.sampling,
            "stop_at_line_end": self.policy.span_ends_at_line,
        }
        if draft is not None and not self.token_mode:
            raise TeacherCallError(
                "the teacher runs in text mode (its tokenizer is not the student's), where "
                "drafts cannot be checked; the student's draft stands",
                sent=False,
            )
        if self.token_mode:
            context = len(answer.teacher_context) + (0 if draft is None else len(draft.token_ids))
            if 0 < info.max_context_tokens < context:
                raise TeacherCallError(
                    f"the context is {context} tokens, over the teacher's limit of "
                    f"{info.max_context_tokens}; the student writes alone",
                    sent=False,
                )
            return SpanQuery(
                **common,
                token_ids=tuple(answer.teacher_context),
                tokenizer_fingerprint=self.student.fingerprint,
                draft=draft,
            )
        return SpanQuery(
            **common, messages=tuple(answer.messages), assistant_prefix=answer.visible_text
        )

    def _student_tokens_of(self, reply: SpanReply) -> list[int]:
        if not self.token_mode:
            return self.student.tokenize(reply.text)
        invalid = [token for token in reply.token_ids if not 0 <= token < self.student.n_vocab]
        if invalid:
            raise TeacherCallError(
                f"the teacher returned token ids outside the student's vocabulary: {invalid[:5]}"
            )
        return list(reply.token_ids)
