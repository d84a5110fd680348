"""Where a span that stops at the end of a line ends (`stop_at_line_end`): at the first line
break after other text, so that line breaks that merely open the span do not end it.

    line_end = LineEnd()
    pieces, ended = line_end.cut(pieces)   # the pieces through the one that ends the line
"""

from __future__ import annotations

from collections.abc import Sequence

from cloud_teacher.spans import Piece


class LineEnd:
    def __init__(self) -> None:
        self._line_has_text = False

    def cut(self, pieces: Sequence[Piece]) -> tuple[list[Piece], bool]:
        """The span's next pieces through the one whose text ends its first non-empty line,
        and whether the line ended (the pieces after it are not part of the span)."""
        for index, piece in enumerate(pieces):
            if self._ends_line(piece.text):
                return list(pieces[: index + 1]), True
        return list(pieces), False

    def _ends_line(self, text: str) -> bool:
        for char in text:
            if char == "\n":
                if self._line_has_text:
                    return True
            elif not char.isspace():
                self._line_has_text = True
        return False
