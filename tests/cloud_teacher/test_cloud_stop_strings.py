"""Stop strings held back token by token: a base model's next turn ends the span."""

from __future__ import annotations

from cloud_teacher.stop_strings import StopScanner

STOPS = ("\nUser:", "\nAssistant:")


def run(pieces: list[str], *, primed_with: str = "") -> tuple[str, bool]:
    scanner = StopScanner(STOPS, primed_with=primed_with)
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
