"""The interface the relay loop needs from a student model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from relay_common.chat import ChatMessage


class StudentEngine(Protocol):
    """A student model holding one conversation in its KV cache.

    cached = student.sync(student.render_prompt(messages))  # evaluates only what is new
    logits = student.next_logits()
    student.append([token])                                # evaluates exactly one token
    """

    model_name: str
    fingerprint: str  # tokenizer fingerprint, compared with the teacher's for token mode
    n_vocab: int
    hidden_size: int  # width of the final hidden state (`next_hidden`)

    def render_prompt(self, messages: Sequence[ChatMessage]) -> list[int]: ...

    def tokenize(self, text: str) -> list[int]:
        """Plain text (no BOS, no special tokens) to ids, for teacher spans in text mode."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """Ids to bytes, special tokens as their text (so `<call>` tokens read as tags)."""
        ...

    def is_end(self, token: int) -> bool: ...

    def sync(self, tokens: Sequence[int]) -> int:
        """Makes the history `tokens`, returns how many came from the cache."""
        ...

    def append(self, tokens: Sequence[int]) -> None:
        """Evaluates exactly `tokens`; raises ContextFullError when they do not fit."""
        ...

    def next_logits(self) -> npt.NDArray[np.float32]: ...

    def set_hidden_states(self, enabled: bool) -> None:
        """Whether later evaluations also keep the last token's final hidden state; off
        unless a policy reads it (`Policy.needs_hidden`)."""
        ...

    def next_hidden(self) -> npt.NDArray[np.float32]:
        """The final hidden state behind `next_logits()`, from the same decode."""
        ...

    def context_room(self) -> int:
        """Tokens that can still be appended before the context is full."""
        ...
