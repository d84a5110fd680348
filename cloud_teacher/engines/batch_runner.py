"""One llama.cpp context holding many sequences, decoded together: the only module of the
teacher's llama.cpp engine that calls llama.cpp's decoding API.

Each sequence has its own window of KV cells (`kv_unified` off): attention of one sequence
reads only its own cells, so a step costs the same however many idle sessions are cached, and
a sequence's cells always start at 0, as in a context of its own.

    runner = BatchRunner(model, n_sequences=16, n_ctx=4096, n_ubatch=512, threads=2, exact=False)
    indices = runner.decode([SequenceInput(seq_id=0, position=0, tokens=ids, wants_logits=True)])
    logits = runner.logits(indices[0])
    runner.drop(seq_id=0, from_position=10)   # forget the sequence's tokens from there on
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp.llama_cpp as llama_lib
import numpy as np
import numpy.typing as npt

from relay_common.errors import ModelLoadError
from relay_common.gguf import GgufModel


class DecodeError(RuntimeError):
    """llama_decode failed: the context's state is unknown from now on."""


@dataclass(frozen=True, slots=True)
class SequenceInput:
    seq_id: int
    position: int  # position of the first token: how many tokens the sequence holds
    tokens: Sequence[int]
    wants_logits: bool  # logits for the last token are read after the decode


class BatchRunner:
    """Not thread-safe: one thread (the step loop) uses it."""

    def __init__(
        self,
        model: GgufModel,
        *,
        n_sequences: int,
        n_ctx: int,
        n_ubatch: int,
        threads: int,
        exact: bool,
        step_tokens: int = 512,
    ) -> None:
        params = llama_lib.llama_context_default_params()
        params.n_ctx = n_ctx * n_sequences  # split evenly between the sequences
        params.n_batch = step_tokens
        params.n_ubatch = min(n_ubatch, step_tokens)
        params.n_seq_max = n_sequences
        params.kv_unified = False
        # Exact mode: the same attention kernels as the student's (`GgufModel`, llama-cpp-python's
        # default), so it gives the student's own logits on the same model. Otherwise llama.cpp
        # picks; flash attention decodes a batch of sessions faster.
        params.flash_attn_type = (
            llama_lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
            if exact
            else llama_lib.LLAMA_FLASH_ATTN_TYPE_AUTO
        )
        # Rolling a sequence back to a shared prefix needs the full-size cache on models with
        # sliding-window attention (Gemma 3); otherwise `drop` fails and prompts re-prefill.
        params.swa_full = True
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        self._ctx = llama_lib.llama_init_from_model(model.native_model, params)
        if not self._ctx:
            raise ModelLoadError(
                f"llama.cpp could not create a context of {n_sequences} sequences x {n_ctx} "
                f"tokens for {model.path}; lower kv_sessions or n_ctx"
            )
        self._memory = llama_lib.llama_get_memory(self._ctx)
        self._batch = llama_lib.llama_batch_init(step_tokens, 0, 1)
        self.step_tokens = step_tokens
        self.n_sequences = n_sequences
        self.n_ctx = llama_lib.llama_n_ctx_seq(self._ctx)
        self.n_vocab = model.n_vocab
        # Tokens llama.cpp decoded over the context's life: lets tests check that only new
        # tokens are evaluated.
        self.evaluated_tokens = 0

    def decode(self, inputs: Sequence[SequenceInput]) -> list[int]:
        """Evaluates every input's tokens in one llama_decode; returns, for each input that
        wants logits, the batch index to read them at (in input order)."""
        batch = self._batch
        n = 0
        indices: list[int] = []
        for item in inputs:
            for offset, token in enumerate(item.tokens):
                batch.token[n] = token
                batch.pos[n] = item.position + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = item.seq_id
                batch.logits[n] = False
                n += 1
            if item.wants_logits and item.tokens:
                batch.logits[n - 1] = True
                indices.append(n - 1)
        if n > self.step_tokens:
            raise ValueError(f"{n} tokens do not fit a step of {self.step_tokens}")
        batch.n_tokens = n
        code = llama_lib.llama_decode(self._ctx, batch)
        if code != 0:
            raise DecodeError(f"llama_decode returned {code}")
        self.evaluated_tokens += n
        return indices

    def logits(self, index: int) -> npt.NDArray[np.float32]:
        """Logits after the token at batch `index` of the last decode: a view, valid until the
        next decode."""
        pointer = llama_lib.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def drop(self, *, seq_id: int, from_position: int) -> bool:
        """Forgets the sequence's tokens from `from_position` on; False when llama.cpp cannot
        cut this sequence there (nothing is removed then)."""
        return bool(llama_lib.llama_memory_seq_rm(self._memory, seq_id, from_position, -1))

    def close(self) -> None:
        if self._ctx:
            llama_lib.llama_batch_free(self._batch)
            llama_lib.llama_free(self._ctx)
            self._ctx = None
