"""Echoing values from outside: a short one whole, a long one cut with its length stated."""

from __future__ import annotations

from relay_common.echo import QUOTE_LIMIT, clipped, quoted


def test_a_short_value_is_quoted_whole() -> None:
    assert quoted("sha256:abc") == "'sha256:abc'"
    assert quoted("") == "''"


def test_a_long_value_shows_its_start_and_its_length() -> None:
    value = "x" * 1_048_576
    shown = quoted(value)
    assert shown == f"'{'x' * QUOTE_LIMIT}'… (1,048,576 characters)"


def test_a_value_of_escapes_stays_short() -> None:
    # repr writes each control character as 4 characters: still a bounded line.
    shown = quoted("\x00" * 100_000)
    assert len(shown.encode()) < 4 * QUOTE_LIMIT + 40


def test_text_is_clipped_without_quotes() -> None:
    assert clipped("all of it") == "all of it"
    assert clipped("y" * 1000, limit=10) == "yyyyyyyyyy… (1,000 characters)"
