"""The answer being written: what the teacher sees of it, what the user saw, and its usage.
Every event of an answer goes through `record`, so its usage and the session's count it once.

    answer = AnswerState(messages=messages, options=options, teacher_context=list(prompt),
                         session_usage=usage)
    event = answer.append(Source.STUDENT, [token], text)   # a TokensAppended, counted
    answer.record(TeacherCall(...))                         # any other event, counted
    if answer.reached_stop(): ...                           # a stop string was written
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_client.relay.events import RelayEvent, Source, TokensAppended
from edge_client.relay.usage import Usage
from relay_common.chat import ChatMessage

if TYPE_CHECKING:
    from edge_client.relay.loop import RelayOptions


@dataclass(slots=True)
class AnswerState:
    messages: Sequence[ChatMessage]
    options: RelayOptions  # this answer's
    teacher_context: list[int]  # prompt + answer without command tokens (token mode)
    session_usage: Usage  # the session's totals, counted with the answer's
    usage: Usage = field(default_factory=Usage)
    visible_text: str = ""  # what the user saw so far (text mode's assistant prefix)
    generated: int = 0
    last_call_end: int | None = None
    stop_checked: int = 0  # visible text already searched for stop strings
    # One decoder for the whole answer: a character split across tokens (or spans) is held
    # back until its last byte arrives.
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )

    @property
    def mid_character(self) -> bool:
        """True while the answer ends inside a multi-byte character (bytes held back)."""
        pending, _ = self.decoder.getstate()
        return bool(pending)

    def append(
        self, source: Source, token_ids: Sequence[int], text: str, *, command: bool = False
    ) -> TokensAppended:
        """Adds tokens the student's context already holds to the answer; `text` is what the
        user sees of them. Command tokens stay out of the teacher's context."""
        if not command:
            self.teacher_context.extend(token_ids)
        self.visible_text += text
        event = TokensAppended(
            source=source,
            token_ids=tuple(token_ids),
            text=text,
            command_tokens=len(token_ids) if command else 0,
        )
        return self.record(event)

    def record(self, event: RelayEvent) -> RelayEvent:
        self.usage.add(event)
        self.session_usage.add(event)
        return event

    def reached_stop(self) -> bool:
        """True once the visible text holds a stop string; searches only the text new since the
        last look (and the tail a stop string may have begun in)."""
        stops = self.options.stop
        if not stops:
            return False
        text = self.visible_text
        start = max(0, self.stop_checked - max(map(len, stops)) + 1)
        self.stop_checked = len(text)
        return any(stop in text[start:] for stop in stops)
