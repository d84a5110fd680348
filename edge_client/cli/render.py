"""How answers look in the terminal: teacher spans and fallback spans stand out."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from edge_client.relay.events import Source, TokensAppended
from edge_client.relay.usage import Usage
from edge_client.teacher.client import TeacherState

SPAN_STYLES = {
    Source.STUDENT: "",
    Source.TEACHER: "bold cyan underline",
    Source.FALLBACK: "yellow",
}
STATE_STYLES = {
    TeacherState.ONLINE: "green",
    TeacherState.DEGRADED: "yellow",
    TeacherState.OFFLINE: "red",
    TeacherState.REFUSED: "red",
}


def legend() -> Text:
    return Text.assemble(
        "student  ",
        ("teacher span", SPAN_STYLES[Source.TEACHER]),
        "  ",
        ("fallback span (teacher unreachable)", SPAN_STYLES[Source.FALLBACK]),
    )


def stream_tokens(console: Console, event: TokensAppended) -> None:
    """Writes the event's text at once, styled by who wrote it."""
    if event.text:
        console.print(Text(event.text, style=SPAN_STYLES[event.source]), end="")
        console.file.flush()


def usage_line(usage: Usage, state: TeacherState | None) -> Text:
    """One line: the teacher's state (None: teacher-free), tokens by source, calls and the
    offload ratio."""
    line = Text("teacher-free" if state is None else "teacher ")
    if state is not None:
        line.append(state.value, style=STATE_STYLES[state])
    read = f", read {usage.draft_tokens}" if usage.draft_tokens else ""
    line.append(
        f" · student {usage.student_tokens} · teacher {usage.teacher_tokens} tokens{read} · "
        f"calls {usage.teacher_calls} ({usage.teacher_failures} failed, "
        f"{usage.calls_not_sent} not sent, {usage.fallback_spans} fallback) · "
        f"offload {usage.offload_ratio:.1%}"
    )
    return line


def refusal_note(state: TeacherState | None) -> Text | None:
    """What to tell the user when the teacher refuses the edge's credentials, else None."""
    if state is not TeacherState.REFUSED:
        return None
    return Text(
        "the teacher refuses this edge's API key: no more calls are made in this session and "
        "the student answers alone; fix the key and start again",
        style="red",
    )


@dataclass(slots=True)
class Span:
    source: str  # student | teacher | fallback
    text: str
    tokens: int


def join_spans(events: list[TokensAppended]) -> list[Span]:
    """Consecutive tokens of one source as one span, in answer order (for `ask --json`)."""
    spans: list[Span] = []
    for event in events:
        if spans and spans[-1].source == event.source.value:
            spans[-1].text += event.text
            spans[-1].tokens += len(event.token_ids)
        else:
            spans.append(Span(event.source.value, event.text, len(event.token_ids)))
    return spans
