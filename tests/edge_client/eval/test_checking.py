"""Answer checking, table-driven: math-verify where installed, and the numeric fallback."""

from __future__ import annotations

from fractions import Fraction

import pytest

from edge_client.eval import checking
from edge_client.eval.checking import final_number, is_correct, last_boxed

CASES = [
    # (the model's answer, the reference, correct?)
    ("She makes 9 * 2 = 18 dollars.\n\\boxed{18}", "18", True),
    ("So the answer is \\boxed{18}.", "17", False),
    ("The total is $1,200.", "1200", True),
    ("It takes 3 bolts.\n#### 3", "3", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("First 4, then 7, so \\boxed{7}", "4", False),  # the boxed answer wins over earlier numbers
    ("x = 3.0", "3", True),
    ("I do not know.", "3", False),
    ("", "3", False),
    ("\\boxed{-5}", "-5", True),
]


@pytest.mark.parametrize(("response", "reference", "expected"), CASES)
def test_is_correct(response, reference, expected):
    assert is_correct(response, reference) is expected


@pytest.mark.parametrize(("response", "reference", "expected"), CASES)
def test_the_numeric_fallback_agrees(monkeypatch, response, reference, expected):
    monkeypatch.setattr(checking, "_math_verify", lambda response, reference: None)
    assert is_correct(response, reference) is expected


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("\\boxed{1,234}", Fraction(1234)),
        ("answer: 3/4", Fraction(3, 4)),
        ("#### 42", Fraction(42)),
        ("no digits", None),
    ],
)
def test_final_number(text, number):
    assert final_number(text) == number


def test_last_boxed_balances_braces_and_knows_a_cut_answer():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("\\boxed{\\frac{1}{2") is None
