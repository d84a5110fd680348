"""Stop strings held back token by token: a base model's next turn ends the span."""

from __future__ import annotations

import pytest

from relay_common.gguf import PLAIN_TURN_MARKERS
from relay_common.stop_strings import StopScanner

STOPS = ("\nUser:", "\nAssistant:")


def run(
    pieces: list[str], *, primed_with: str = "", stops: tuple[str, ...] = STOPS
) -> tuple[str, bool]:
    scanner = StopScanner(stops, primed_with=primed_with)
    emitted: list[tuple[int, str]] = []
    for token_id, piece in enumerate(pieces):
        released, stopped = scanner.feed(token_id, piece)
        emitted += released
        if stopped:
            break
    else:
        emitted += scanner.flush()
    ids = [token_id for token_id, _ in emitted]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # in order, none twice
    return "".join(text for _, text in emitted), stopped


def test_text_without_a_stop_passes_through():
    assert run(["The answer", " is", " 72."]) == ("The answer is 72.", False)


def test_a_new_turn_ends_the_span_and_is_not_emitted():
    assert run(["72.", "\n", "\n", "User", ":", " and"]) == ("72.\n", True)


def test_a_stop_split_across_tokens_and_the_previous_span():
    assert run(["er:", " hi"], primed_with="It is 72.\nUs") == ("", True)


def test_a_newline_is_held_only_until_it_cannot_start_a_stop():
    scanner = StopScanner(STOPS)
    assert scanner.feed(0, "72.\n") == ([], False)  # its "\n" may start a stop
    released, stopped = scanner.feed(1, "Next")
    assert not stopped
    assert "".join(text for _, text in released) == "72.\nNext"


def test_a_length_end_releases_what_was_held():
    assert run(["It is", "\nUs"]) == ("It is\nUs", False)


# (pieces, text before the stop, primed_with): the text before a stop is never lost, even when
# it shares a token with the stop.
TEXT_BEFORE_A_STOP = {
    "a token ending with the stop's first character": (
        ["Paris", ".\n", "Question", ":"],
        "Paris.",
        "",
    ),
    "a token ending with the stop's first characters": (
        ["72", ".\nQue", "stion", ": next"],
        "72.",
        "",
    ),
    "the whole stop inside one token, text on both sides": (
        ["Rome", ".\nAnswer: no"],
        "Rome.",
        "",
    ),
    "the stop right after released text": (["Paris", "\n", "Question:"], "Paris", ""),
    "a held newline that was not a stop, then a stop": (
        ["It", "\n", "goes", "\nQuestion:"],
        "It\ngoes",
        "",
    ),
    "the stop begun in the previous span": (["stion:", " more"], "", "Paris.\nQue"),
    "the earliest of two stops": (["a\nAnswer:\nQuestion:"], "a", ""),
    "a blank line before the next turn": (["Paris", ".\n", "\n", "Question", ":"], "Paris.", ""),
}


@pytest.mark.parametrize("case", TEXT_BEFORE_A_STOP, ids=list(TEXT_BEFORE_A_STOP))
def test_the_text_before_a_stop_is_released(case: str) -> None:
    pieces, before, primed_with = TEXT_BEFORE_A_STOP[case]
    assert run(pieces, primed_with=primed_with, stops=PLAIN_TURN_MARKERS) == (before, True)


def test_a_token_straddling_the_stop_keeps_its_id_with_its_text_cut() -> None:
    scanner = StopScanner(PLAIN_TURN_MARKERS)
    assert scanner.feed(1, "Paris") == ([(1, "Paris")], False)
    assert scanner.feed(2, ".\n") == ([], False)
    assert scanner.feed(3, "Question") == ([], False)
    assert scanner.feed(4, ":") == ([(2, ".")], True)
