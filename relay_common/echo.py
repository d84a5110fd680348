"""Values from outside (a request's fields, a remote's status message, a library's error text)
as messages and logs may show them: cut to a short prefix with the full length stated. An
echoed value is never longer than this, however long the value: a client that sends a 1 MB
field gets a short refusal, and the log line it causes stays short too.

    f"the fingerprint is {quoted(value)}"     # 'c0ffee…' (1,048,576 characters) when long
    f"vLLM refused it: {clipped(str(exc))}"   # plain text, cut the same way
"""

from __future__ import annotations

# Characters of a value shown; enough to recognise it, short enough to log at any rate.
QUOTE_LIMIT = 64
# Characters of a free-form text shown (an error message of a library or of a remote).
TEXT_LIMIT = 300


def quoted(value: str, *, limit: int = QUOTE_LIMIT) -> str:
    """`value` quoted (its `repr`), or its first `limit` characters quoted, an ellipsis and
    its length when it is longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def clipped(text: str, *, limit: int = TEXT_LIMIT) -> str:
    """`text` as it is, or its first `limit` characters, an ellipsis and its length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"
