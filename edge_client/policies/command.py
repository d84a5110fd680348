"""RelayLLM: the student itself asks for help by writing `<call>n</call>`.

The tag is parsed as the student streams, token by token: it may be split across tokens or
come as special tokens (decoded as their text). Tokens that may be starting a tag are held
back until it is clear whether they are one; the tag's tokens stay in the student's history
but are hidden from the user and from the teacher.

    <call>5</call>   ask for 5 tokens          <call></call>   ask for the default span
    <call>0</call>   no call                   <call>99</call> clamped to the span limit
    <call>x</call>   malformed: shown as text, no call
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_client.policies.base import Policy, Released, Step

OPEN = "<call>"
CLOSE = "</call>"
# Longest `n` we wait for inside a tag before deciding it is not a command.
MAX_TAG_BODY = 8


@dataclass(slots=True)
class _Held:
    token_id: int
    text: str


class CommandPolicy(Policy):
    """Calls when the student writes a `<call>n</call>` command."""

    name = "command"

    def __init__(self, *, default_span: int, max_span: int) -> None:
        self.default_span = default_span
        self.max_span = max_span
        self._held: list[_Held] = []
        self._pending_call = 0

    def start_answer(self) -> None:
        self._held.clear()
        self._pending_call = 0

    def decide(self, step: Step) -> int:
        span, self._pending_call = self._pending_call, 0
        return span

    def observe(self, token_id: int, text: str) -> list[Released]:
        self._held.append(_Held(token_id, text))
        released: list[Released] = []
        while self._held:
            joined = "".join(held.text for held in self._held)
            start = joined.find(OPEN)
            if start < 0:
                # Release what cannot be the start of a tag; hold the rest.
                released += self._release_plain(before=_possible_tag_start(joined))
                break
            end = joined.find(CLOSE, start + len(OPEN))
            if end < 0:
                if len(joined) - start - len(OPEN) <= MAX_TAG_BODY + len(CLOSE):
                    released += self._release_plain(before=start)
                    break
                released += self._release_through(start)  # too long for a command
                continue
            span = self._parse_span(joined[start + len(OPEN) : end])
            if span is None:  # malformed: it was ordinary text after all
                released += self._release_through(start)
                continue
            self._pending_call = span
            plain = self._release_plain(before=start)
            shift = sum(len(token.text) for token in plain)
            released += plain
            released += self._release_command(start - shift, end + len(CLOSE) - shift)
        return released

    def flush(self) -> list[Released]:
        return self._release_plain(before=None)

    def _parse_span(self, body: str) -> int | None:
        body = body.strip()
        if not body:
            return self.default_span
        if not body.isdigit():
            return None
        return min(int(body), self.max_span)

    def _release_plain(self, *, before: int | None) -> list[Released]:
        """Releases, as ordinary text, the held tokens that end at or before char `before`."""
        released: list[Released] = []
        offset = 0
        while self._held:
            held = self._held[0]
            if before is not None and offset + len(held.text) > before:
                break
            offset += len(held.text)
            released.append(Released(held.token_id, held.text))
            self._held.pop(0)
        return released

    def _release_through(self, index: int) -> list[Released]:
        """Releases, as ordinary text, the held tokens up to the one holding char `index`."""
        released: list[Released] = []
        offset = 0
        while self._held and offset <= index:
            held = self._held.pop(0)
            offset += len(held.text)
            released.append(Released(held.token_id, held.text))
        return released

    def _release_command(self, tag_start: int, tag_end: int) -> list[Released]:
        """Releases the held tokens overlapping the tag at chars [tag_start, tag_end).

        Text such a token carries outside the tag stays visible to the user.
        """
        released: list[Released] = []
        offset = 0
        while self._held and offset < tag_end:
            held = self._held.pop(0)
            visible = held.text[: max(0, tag_start - offset)] + held.text[tag_end - offset :]
            offset += len(held.text)
            released.append(Released(held.token_id, visible, command=True))
        return released


def _possible_tag_start(text: str) -> int:
    """Index of the earliest suffix of `text` that is a proper prefix of `<call>`."""
    for index in range(max(0, len(text) - len(OPEN) + 1), len(text)):
        if OPEN.startswith(text[index:]):
            return index
    return len(text)
