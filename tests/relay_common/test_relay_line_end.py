"""Where a `stop_at_line_end` span ends: with its first non-empty line."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from relay_common.line_end import LineEnd


class Piece(NamedTuple):
    token_id: int
    text: str


def cut(*texts: str) -> tuple[list[str], bool]:
    pieces, ended = LineEnd().cut([Piece(i, t) for i, t in enumerate(texts)])
    return [p.text for p in pieces], ended


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("First", " step", ".\n", "Second"), (["First", " step", ".\n"], True)),
        (("\n", "\n", "Step", ":\n\n", "Next"), (["\n", "\n", "Step", ":\n\n"], True)),
        ((" ", "\n", "x"), ([" ", "\n", "x"], False)),  # only white space before the break
        (("no", " break"), (["no", " break"], False)),
    ],
)
def test_the_span_ends_with_the_piece_that_ends_its_first_line(texts, expected):
    assert cut(*texts) == expected


def test_a_line_goes_on_across_calls():
    line_end = LineEnd()
    assert line_end.cut([Piece(1, "Half")]) == ([Piece(1, "Half")], False)
    pieces, ended = line_end.cut([Piece(2, "\n")])
    assert ended and [p.text for p in pieces] == ["\n"]


def test_text_by_text():
    line_end = LineEnd()
    assert [line_end.ends_line(text) for text in ("\n", " 1.", " Apple", "\n")] == [
        False,
        False,
        False,
        True,
    ]
