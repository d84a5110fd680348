"""What the client sees of an answer: its text by who wrote it, cut at the first stop string.

    text = AnswerText(stops=("\\n\\n",))
    for event in token_events:
        send(text.add(event))        # pieces safe to show: text that may begin a stop is held
    send(text.finish())              # what is still held, unless a stop string was reached
    text.stopped                     # True once a stop string was reached

The relay loop ends the answer at the token that completes a stop string; that token's text
and anything after it never reach the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_client.relay.events import Source, TokensAppended
from relay_common.stop_strings import StopScanner


@dataclass(frozen=True, slots=True)
class Piece:
    source: Source
    text: str


class AnswerText:
    def __init__(self, *, stops: tuple[str, ...] = ()) -> None:
        self._scanner = StopScanner(stops) if stops else None
        self._sources: list[Source] = []  # the scanner's "token ids" index into this
        self.stopped = False
        self.text = ""  # everything released so far

    def add(self, event: TokensAppended) -> list[Piece]:
        if self.stopped or not event.text:
            return []
        if self._scanner is None:
            return self._released([(event.source, event.text)])
        self._sources.append(event.source)
        released, self.stopped = self._scanner.feed(len(self._sources) - 1, event.text)
        return self._released([(self._sources[index], text) for index, text in released])

    def finish(self) -> list[Piece]:
        if self._scanner is None or self.stopped:
            return []
        return self._released([(self._sources[i], text) for i, text in self._scanner.flush()])

    def _released(self, pieces: list[tuple[Source, str]]) -> list[Piece]:
        """Adjacent pieces of one source joined, empty ones dropped."""
        joined: list[Piece] = []
        for source, text in pieces:
            if not text:
                continue
            self.text += text
            if joined and joined[-1].source is source:
                joined[-1] = Piece(source, joined[-1].text + text)
            else:
                joined.append(Piece(source, text))
        return joined
