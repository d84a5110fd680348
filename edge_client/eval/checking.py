"""Is an answer right? By math-verify where it is installed (it parses \\boxed{} and LaTeX and
compares symbolically), else by number: the last \\boxed{} of the answer, or the number after
"####", or the answer's last number, compared with the reference's number.

    is_correct("... so she makes \\boxed{18} dollars.", "18")   # True
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_BOXED = "\\boxed{"
_FRACTION = re.compile(r"\\d?frac\{(-?\d+)\}\{(\d+)\}")  # \frac{1}{2} -> 1/2


def is_correct(response: str, reference: str) -> bool:
    """Whether `response` ends with the answer `reference` (a number, or LaTeX)."""
    verified = _math_verify(response, reference)
    if verified is not None:
        return verified
    predicted, expected = final_number(response), final_number(reference)
    return predicted is not None and predicted == expected


def final_number(text: str) -> Fraction | None:
    """The number an answer ends with: inside its last \\boxed{}, after its last "####", or
    its last number; None when it holds none."""
    boxed = last_boxed(text)
    text = boxed if boxed is not None else (text.rpartition("####")[2] or text)
    found = _NUMBER.findall(_FRACTION.sub(r"\1/\2", text.replace("$", "")))
    if not found:
        return None
    try:
        return Fraction(found[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, braces balanced; None when there is none."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, begin = 1, start + len(_BOXED)
    for index in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[begin:index]
    return None  # unclosed: the answer was cut off


def _math_verify(response: str, reference: str) -> bool | None:
    """math-verify's verdict; None when it is not installed or finds no answer to compare."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    gold = parse(f"${reference}$")
    predicted = parse(response)
    if not gold or not predicted:
        return None
    return bool(verify(gold, predicted))
