"""Where a span that stops at the end of a line ends (`stop_at_line_end`): at the first line
break after other text, so that line breaks that merely open the span do not end it. The
teacher's engines end their spans there, and so does the student when it writes a step the
teacher could not.

    line_end = LineEnd()
    pieces, ended = line_end.cut(pieces)   # the pieces through the one that ends the line
    line_end.ends_line(text)               # or text by text
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


_Piece = TypeVar("_Piece", bound=_HasText)


class LineEnd:
    def __init__(self) -> None:
        self._line_has_text = False

    def cut(self, pieces: Sequence[_Piece]) -> tuple[list[_Piece], bool]:
        """The span's next pieces through the one whose text ends its first non-empty line,
        and whether the line ended (the pieces after it are not part of the span)."""
        for index, piece in enumerate(pieces):
            if self.ends_line(piece.text):
                return list(pieces[: index + 1]), True
        return list(pieces), False

    def ends_line(self, text: str) -> bool:
        """Whether `text`, the span's next text, ends its first non-empty line."""
        for char in text:
            if char == "\n":
                if self._line_has_text:
                    return True
            elif not char.isspace():
                self._line_has_text = True
        return False
