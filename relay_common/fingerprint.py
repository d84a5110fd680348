"""Tokenizer fingerprints: what token mode compares to know that two models give every token id
the same meaning.

    tokenizer_fingerprint(token_texts)   # "sha256:<hex>" over each token's text, in id order

Only the vocabulary goes in, so any engine that knows its id → text table computes the same
value: llama.cpp from a GGUF's vocabulary, vLLM from the Hugging Face tokenizer (a GGUF stores
that tokenizer's own token strings).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def tokenizer_fingerprint(token_texts: Iterable[bytes]) -> str:
    """`sha256:<hex>` over every token's text (UTF-8 bytes), in id order, each ended by NUL."""
    digest = hashlib.sha256()
    for text in token_texts:
        digest.update(text + b"\0")
    return f"sha256:{digest.hexdigest()}"
