"""Ending text at a stop string, token by token, without streaming any part of it.

The teacher ends a base model's span at its next turn marker: base models (no chat template
of their own) are prompted with the plain template, and they tend to go on writing the next
turn ("\\nUser: ...") instead of ending the answer. `relay-edge serve` ends an answer at the
`stop` strings of an OpenAI request. Tokens that may be the start of a stop string are held
back until that is settled.

When a stop string is reached, all text before it is released, none of it after: a token whose
text straddles the stop's start (".\n" before "Question:") is released with its text cut
there ("."), under its own id. Its id stays because the token was generated (and is counted);
in the teacher's text mode (its only mode with stop strings) the text is what the client
uses.

    scanner = StopScanner(stops, primed_with=assistant_prefix)
    released, stopped = scanner.feed(token_id, text)   # tokens safe to emit; stop reached?
    released = scanner.flush()                        # at the end of the span
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str], *, primed_with: str = "") -> None:
        self._stops = tuple(stops)
        longest = max((len(stop) for stop in self._stops), default=0)
        # Text already written before the span: a stop string may begin there.
        self._before = primed_with[-longest:] if longest else ""
        self._held: list[tuple[int, str]] = []

    def feed(self, token_id: int, text: str) -> tuple[list[tuple[int, str]], bool]:
        """Takes the next token; returns the tokens that are safe to emit and whether a stop
        string was reached (its tokens, and any after it, are then dropped)."""
        self._held.append((token_id, text))
        window = self._before + "".join(held_text for _, held_text in self._held)
        starts = [window.find(stop) for stop in self._stops if stop in window]
        if starts:
            return self._release_before(min(starts)), True
        keep_from = self._earliest_partial_stop(window)
        released: list[tuple[int, str]] = []
        offset = len(self._before)
        while self._held and offset + len(self._held[0][1]) <= keep_from:
            offset += len(self._held[0][1])
            released.append(self._held.pop(0))
        # What was released stays as context: a stop string may begin in it.
        written = self._before + "".join(text for _, text in released)
        longest = max(len(stop) for stop in self._stops)
        self._before = written[-longest:]
        return released, False

    def _release_before(self, stop_at: int) -> list[tuple[int, str]]:
        """The held tokens' text before index `stop_at` of the window; the rest is dropped."""
        released: list[tuple[int, str]] = []
        offset = len(self._before)
        for token_id, text in self._held:
            if offset >= stop_at:
                break
            released.append((token_id, text[: stop_at - offset]))
            offset += len(text)
        self._held.clear()
        return released

    def flush(self) -> list[tuple[int, str]]:
        """Releases what is still held when the span ends without a stop."""
        released, self._held = self._held, []
        return released

    def _earliest_partial_stop(self, window: str) -> int:
        """Index where a proper prefix of some stop string starts at the end of `window`."""
        for index in range(len(window)):
            suffix = window[index:]
            if any(stop.startswith(suffix) for stop in self._stops):
                return index
        return len(window)
