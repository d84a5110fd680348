"""The student on llama.cpp: any GGUF, the SmolLM2-135M-Instruct embedded default."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_client.errors import StudentError
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.errors import ModelLoadError, ModelNotFoundError
from relay_common.gguf import GgufModel


class LlamaStudent:
    """A `StudentEngine` over a GGUF file (see `relay_common.gguf.GgufModel`)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_ubatch: int = 512,
        n_threads: int | None = None,
    ) -> None:
        try:
            self.model = GgufModel(
                Path(path) if path else smollm2_path(),
                n_ctx=n_ctx,
                n_ubatch=n_ubatch,
                n_threads=n_threads,
            )
        except (ModelNotFoundError, ModelLoadError) as exc:
            raise StudentError(f"{exc} (student model)") from exc
        self.model_name = self.model.name
        self.fingerprint = self.model.fingerprint
        self.n_vocab = self.model.n_vocab
        self.hidden_size = self.model.hidden_size

    def render_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self.model.render_chat(messages)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        return self.model.detokenize(tokens, special=True)

    def is_end(self, token: int) -> bool:
        return self.model.is_end(token)

    def sync(self, tokens: Sequence[int]) -> int:
        return self.model.sync(tokens)

    def append(self, tokens: Sequence[int]) -> None:
        self.model.append(tokens)

    def next_logits(self) -> npt.NDArray[np.float32]:
        return self.model.next_logits()

    def set_hidden_states(self, enabled: bool) -> None:
        if enabled != self.model.hidden_states:
            self.model.set_hidden_states(enabled)

    def next_hidden(self) -> npt.NDArray[np.float32]:
        return self.model.next_hidden()

    def context_room(self) -> int:
        return self.model.n_ctx - len(self.model.tokens)

    @property
    def evaluated_tokens(self) -> int:
        """Tokens llama.cpp evaluated so far (to check that spans are not re-evaluated)."""
        return self.model.evaluated_tokens

    def close(self) -> None:
        self.model.close()
