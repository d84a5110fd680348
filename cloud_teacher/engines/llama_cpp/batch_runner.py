"""One llama.cpp context holding many sequences, decoded together: the only module of the
teacher's llama.cpp engine that calls llama.cpp's decoding API.

Each sequence has its own window of KV cells (`kv_unified` off): attention of one sequence
reads only its own cells, so a step costs the same however many idle sessions are cached, and
a sequence's cells always start at 0, as in a context of its own. (A unified cache made every
step attend over all cached sessions' cells: with 24 idle sessions of 800 tokens, a step of 8
sessions cost twice as much.)

llama.cpp evaluates a step's sequences in one pass over the weights only where their ids are
consecutive; other ids cost a pass each. Sessions between two calls leave holes among the
decoding ones (7 sessions with one hole cost about what 14 do), so each hole gets one padding
token, at the end of its sequence, removed again after the step. Only while the holes are
few: padding 24 holes around 8 sessions cost more than the passes it saved. llama.cpp's
`n_batch` is sized for a full step plus that padding (a batch over it aborts the process), and
every batch is checked before `llama_decode` (batch_check.py).

    runner = BatchRunner(model, n_sequences=16, n_ctx=4096, n_ubatch=512, threads=2, exact=False)
    indices = runner.decode([SequenceInput(seq_id=0, position=0, tokens=ids, wants_logits=True)])
    logits = runner.logits(indices[0])
    runner.drop(seq_id=0, from_position=10)   # forget the sequence's tokens from there on
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud_teacher.engines.llama_cpp.batch_check import (
    BatchBounds,
    BatchRejectedError,
    check_batch,
)
from relay_common.errors import ModelLoadError
from relay_common.gguf import GgufModel
from relay_common.llama_import import llama_lib


class DecodeError(RuntimeError):
    """llama_decode failed: the context's state is unknown from now on."""


@dataclass(frozen=True, slots=True)
class SequenceInput:
    seq_id: int
    position: int  # position of the first token: how many tokens the sequence holds
    tokens: Sequence[int]
    wants_logits: bool  # logits for the last token are read after the decode
    # Logits are also kept for every token from this offset in `tokens` on (a draft check);
    # the token at offset o is read at the returned index - (len(tokens) - 1 - o).
    logits_from: int | None = None


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
        # A step's tokens plus a padding token in each other sequence (`_padding`).
        params.n_batch = step_tokens + n_sequences
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
        self._batch = llama_lib.llama_batch_init(params.n_batch, 0, 1)
        self.step_tokens = step_tokens
        self.n_sequences = n_sequences
        self.n_ctx = llama_lib.llama_n_ctx_seq(self._ctx)
        self.n_vocab = model.n_vocab
        self._bounds = BatchBounds(
            n_batch=llama_lib.llama_n_batch(self._ctx),
            n_vocab=self.n_vocab,
            n_sequences=llama_lib.llama_n_seq_max(self._ctx),
            n_ctx=self.n_ctx,
        )
        # Tokens llama.cpp decoded over the context's life: lets tests check that only new
        # tokens are evaluated.
        self.evaluated_tokens = 0

    def decode(self, inputs: Sequence[SequenceInput]) -> list[int]:
        """Evaluates every input's tokens in one llama_decode; returns, for each input that
        wants logits, the batch index to read them at (in input order).

        Raises `BatchRejectedError`, before llama.cpp sees the batch, when it would refuse it
        (nothing is evaluated then), and `DecodeError` when llama_decode fails all the same.
        """
        evaluated = sum(len(item.tokens) for item in inputs)
        if evaluated > self.step_tokens:
            raise BatchRejectedError(
                f"{evaluated} tokens do not fit a step of {self.step_tokens}",
                seq_ids=(item.seq_id for item in inputs),
            )
        # The inputs first: padding reads llama.cpp's memory of the ids between theirs.
        check_batch(inputs, self._bounds, next_position=self._next_position)
        padding = [
            SequenceInput(seq_id=seq_id, position=position, tokens=(0,), wants_logits=False)
            for seq_id, position in self._padding(inputs)
        ]
        check_batch([*inputs, *padding], self._bounds, next_position=self._next_position)
        # In order of sequence id: llama.cpp takes sequences into one pass only in that order.
        entries = sorted(enumerate([*inputs, *padding]), key=lambda entry: entry[1].seq_id)
        batch = self._batch
        n = 0
        logits_at: dict[int, int] = {}
        for number, item in entries:
            for offset, token in enumerate(item.tokens):
                batch.token[n] = token
                batch.pos[n] = item.position + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = item.seq_id
                batch.logits[n] = item.logits_from is not None and offset >= item.logits_from
                n += 1
            if item.wants_logits and item.tokens:
                batch.logits[n - 1] = True
                logits_at[number] = n - 1
        batch.n_tokens = n
        code = llama_lib.llama_decode(self._ctx, batch)
        if code != 0:
            raise DecodeError(f"llama_decode returned {code}")
        for item in padding:  # its token is no part of the sequence
            self.drop(seq_id=item.seq_id, from_position=item.position)
        self.evaluated_tokens += evaluated
        return [logits_at[number] for number in sorted(logits_at)]

    def _padding(self, inputs: Sequence[SequenceInput]) -> list[tuple[int, int]]:
        """(sequence, position) of a padding token for each hole between the ids of the
        step's sequences, while there are no more holes than sequences; none for a sequence
        whose window is full."""
        stepping = {item.seq_id for item in inputs if item.tokens}
        if len(stepping) < 2 or max(stepping) - min(stepping) + 1 > 2 * len(stepping):
            return []
        padding = []
        for seq_id in range(min(stepping), max(stepping)):
            if seq_id in stepping:
                continue
            position = self._next_position(seq_id)
            if position < self.n_ctx:
                padding.append((seq_id, position))
        return padding

    def _next_position(self, seq_id: int) -> int:
        """Tokens llama.cpp holds for the sequence: the position its next token takes."""
        return llama_lib.llama_memory_seq_pos_max(self._memory, seq_id) + 1

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
