"""A GGUF model on llama.cpp with an explicit, incrementally evaluated token history.

Both the student and the teacher use it: it owns the KV cache and knows which tokens it holds,
so callers append only what is new (`append`) or roll back to a shared prefix (`sync`).
Logits are read for the last position only, straight from llama.cpp (no `logits_all`).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import jinja2
import numpy as np
import numpy.typing as npt

from relay_common.chat import ChatMessage
from relay_common.echo import clipped
from relay_common.errors import (
    ChatTemplateError,
    ContextFullError,
    ModelLoadError,
    ModelNotFoundError,
)
from relay_common.fingerprint import tokenizer_fingerprint
from relay_common.llama_import import llama_cpp, llama_lib

# Used when a GGUF has no chat template (base models such as Gemma-3-270M). Base models answer
# "Question: …\nAnswer:" far better than a chat layout (Gemma-3-270M: "Paris" where "User: …
# Assistant:" gave "1990."). The open answer ends at "Answer:" with no space: the model writes
# its own leading space (a trailing space in the prompt derails it).
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}Question: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Answer: {{ message['content'] }}\n\n"
    "{% else %}{{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Answer:{% endif %}"
)
# A base model continuing PLAIN_CHAT_TEMPLATE ends the answer by opening another turn, most
# often after a blank line as the template does; that blank line is no part of the answer.
PLAIN_TURN_MARKERS = ("\n\nQuestion:", "\n\nAnswer:", "\nQuestion:", "\nAnswer:")


def _guard_amx_repacking() -> None:
    """Loads every model with `use_extra_bufts = False`.

    On CPUs with AMX (Sapphire Rapids and later, common on cloud VMs) llama.cpp's AMX weight
    repacking crashes the first decode (segfault in ggml_backend_amx_mul_mat). The extra buffer
    types only serve that repacking, so turning them off costs nothing elsewhere. `Llama` builds
    its model parameters from `llama_model_default_params()`, so the default is patched once.
    """
    default_params = llama_lib.llama_model_default_params
    if getattr(default_params, "_relay_guarded", False):
        return
    if "use_extra_bufts" not in {name for name, _ in llama_lib.llama_model_params._fields_}:
        return

    def params_without_extra_bufts() -> llama_lib.llama_model_params:
        params = default_params()
        params.use_extra_bufts = False
        return params

    params_without_extra_bufts._relay_guarded = True  # type: ignore[attr-defined]
    llama_lib.llama_model_default_params = params_without_extra_bufts


_guard_amx_repacking()


def usable_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class GgufModel:
    """One llama.cpp context over one GGUF file. Not thread-safe: one user at a time."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_ubatch: int = 512,
        chat_template: str | None = None,
    ) -> None:
        """Loads `path`. `n_ubatch` is how many tokens llama.cpp evaluates per step: logits
        depend (slightly) on how tokens were batched, so 1 makes them batch-invariant (exact
        mode) — a model then gives bit-identical results however its context was split into
        calls, at the cost of slower prompt evaluation. `n_threads` decodes one token at a
        time (llama.cpp's default when None); prompts use every usable core.
        `chat_template` (Jinja) replaces the template embedded in the file, e.g. where that one
        is broken."""
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelNotFoundError(
                f"model file not found: {self.path}; give the path of a .gguf file"
            )
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_batch=min(512, n_ctx),
                n_ubatch=min(n_ubatch, 512, n_ctx),
                n_threads=n_threads,
                n_threads_batch=n_threads or usable_cores(),
                # Rolling the KV cache back to a shared prefix needs the full-size cache on
                # models with sliding-window attention (Gemma 3); without it llama.cpp cannot
                # remove a suffix and every call would re-evaluate the whole context.
                swa_full=True,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {self.path}: {exc}") from exc
        self.name = self.path.stem
        self.n_ctx = self.llama.n_ctx()
        self.n_vocab = self.llama.n_vocab()
        self._vocab = self.llama._model.vocab
        self._ctx = self.llama._ctx
        self._fingerprint: str | None = None
        self._fingerprint_lock = threading.Lock()
        self.tokens: list[int] = []
        self.hidden_states = False  # see set_hidden_states
        # Tokens llama.cpp decoded over this model's life: lets callers and tests check that
        # only new tokens are evaluated.
        self.evaluated_tokens = 0
        embedded = self.llama.metadata.get("tokenizer.chat_template")
        template = chat_template or embedded or PLAIN_CHAT_TEMPLATE
        self.has_chat_template = bool(chat_template or embedded)
        try:
            self._chat = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self._piece_text(self.llama.token_eos()),
                bos_token=self._piece_text(self.llama.token_bos()),
                add_generation_prompt=True,
            )
        except jinja2.TemplateError as exc:
            self.llama.close()
            raise ChatTemplateError(
                f"the chat template of {self.path.name} is not valid Jinja ({exc}); "
                "fix it or give another one"
            ) from exc

    @property
    def native_model(self) -> llama_lib.llama_model_p:
        """The loaded llama.cpp model, for contexts of one's own over the same weights."""
        return self.llama._model.model

    # -- tokenizer ---------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> bytes:
        text = b"".join(self.piece(token, special=special) for token in tokens)
        # As `Llama.detokenize` does: SentencePiece's word-start space after BOS is no text.
        if tokens and tokens[0] == self.llama.token_bos() and text.startswith(b" "):
            return text[1:]
        return text

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token, possibly part of a multi-byte UTF-8 character.

        Not `Llama.detokenize`: its 32-byte buffer silently drops longer pieces (both embedded
        models have hundreds of such tokens).
        """
        buffer = ctypes.create_string_buffer(64)
        size = llama_lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, special)
        if size < 0:  # the piece needs `-size` bytes
            buffer = ctypes.create_string_buffer(-size)
            size = llama_lib.llama_token_to_piece(
                self._vocab, token, buffer, len(buffer), 0, special
            )
        return buffer.raw[:size]

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, end of turn)."""
        return bool(llama_lib.llama_vocab_is_eog(self._vocab, token))

    def is_valid_token(self, token: int) -> bool:
        return 0 <= token < self.n_vocab

    @property
    def fingerprint(self) -> str:
        """The vocabulary's `tokenizer_fingerprint` (relay_common/fingerprint.py).

        Two models with the same fingerprint give every id the same meaning, so token ids can
        pass between them unchanged (token mode: nothing is re-tokenized on either side).
        """
        with self._fingerprint_lock:
            if self._fingerprint is None:
                self._fingerprint = tokenizer_fingerprint(
                    llama_lib.llama_vocab_get_text(self._vocab, token)
                    for token in range(self.n_vocab)
                )
            return self._fingerprint

    def render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The messages in the model's chat template, opening the assistant's turn, as tokens.

        Raises `ChatTemplateError` when the template refuses the conversation (templates call
        `raise_exception`, e.g. Qwen3's when there is no user message).
        """
        try:
            rendered = self._chat(
                messages=[{"role": m.role, "content": m.content} for m in messages]
            )
        except Exception as exc:  # a template is code: its refusals and bugs raise anything
            raise ChatTemplateError(
                f"the teacher's chat template refused the conversation: {clipped(str(exc))}; "
                "check the roles and order of the messages (most templates need a user message)"
            ) from exc
        prompt = rendered.prompt
        bos = self._piece_text(self.llama.token_bos())
        # Templates that write the BOS text themselves must not get a second BOS token.
        add_bos = not (bos and prompt.startswith(bos))
        return self.tokenize(prompt, add_bos=add_bos, special=True)

    def render_continuation(
        self, messages: Sequence[ChatMessage], assistant_prefix: str
    ) -> list[int]:
        """The messages in the chat template, then the assistant's partial answer to go on."""
        prompt = self.render_chat(messages)
        if not assistant_prefix:
            return prompt
        if not self.has_chat_template:
            assistant_prefix = " " + assistant_prefix  # after "Answer:" (see the template)
        return prompt + self.tokenize(assistant_prefix)

    def _piece_text(self, token: int) -> str:
        if token < 0:
            return ""
        return llama_lib.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    # -- KV cache ------------------------------------------------------------------------------

    def append(self, tokens: Sequence[int]) -> None:
        """Evaluates exactly `tokens` after the current history."""
        if not tokens:
            return
        if len(self.tokens) + len(tokens) > self.n_ctx:
            raise ContextFullError(
                f"{len(self.tokens) + len(tokens)} tokens do not fit the context window of "
                f"{self.n_ctx}; start a new conversation or raise the context size"
            )
        self.llama.n_tokens = len(self.tokens)
        if self.hidden_states and len(tokens) > 1:
            # With embeddings on, llama.cpp makes every token of a batch an output (logits
            # over the whole vocabulary included); only the last one's hidden state is read.
            llama_lib.llama_set_embeddings(self._ctx.ctx, False)
            self.llama.eval(list(tokens[:-1]))
            llama_lib.llama_set_embeddings(self._ctx.ctx, True)
            self.llama.eval([tokens[-1]])
        else:
            self.llama.eval(list(tokens))
        self.tokens.extend(tokens)
        self.evaluated_tokens += len(tokens)

    def truncate(self, length: int) -> None:
        """Forgets everything after the first `length` tokens of the history."""
        if length >= len(self.tokens):
            return
        if not self._ctx.kv_cache_seq_rm(-1, length, -1):
            # Some caches cannot drop a suffix; start over and evaluate the prefix again.
            kept = self.tokens[:length]
            self.reset()
            self.append(kept)
            return
        del self.tokens[length:]
        self.llama.n_tokens = length

    def sync(self, tokens: Sequence[int]) -> int:
        """Makes the history equal `tokens`, reusing the longest shared prefix.

        Returns how many of `tokens` came from the cache. The last token is always evaluated
        again when nothing else is new, because logits exist only for the last decode.
        """
        if not tokens:
            raise ValueError("cannot sync to an empty context")
        shared = 0
        for held, wanted in zip(self.tokens, tokens, strict=False):
            if held != wanted:
                break
            shared += 1
        shared = min(shared, len(tokens) - 1)
        self.truncate(shared)
        cached = len(self.tokens)
        self.append(tokens[cached:])
        return cached

    def reset(self) -> None:
        self._ctx.kv_cache_clear()
        self.tokens.clear()
        self.llama.n_tokens = 0

    def next_logits(self) -> npt.NDArray[np.float32]:
        """Logits for the position after the history: a view, valid until the next decode."""
        if not self.tokens:
            raise ValueError("no tokens evaluated yet")
        pointer = llama_lib.llama_get_logits_ith(self._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    # -- hidden states ---------------------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        """Width of the final hidden state (the model's embedding length)."""
        return int(llama_lib.llama_model_n_embd(self.native_model))

    def set_hidden_states(self, enabled: bool) -> None:
        """Makes every later decode also give the final hidden state of its last token
        (`next_hidden`). Off by default: only a policy that reads it pays for it."""
        if (
            enabled
            and llama_lib.llama_pooling_type(self._ctx.ctx) != llama_lib.LLAMA_POOLING_TYPE_NONE
        ):
            # A pooled (sentence-embedding) model gives one vector per sequence, not per token.
            raise ModelLoadError(
                f"{self.path.name} pools its hidden states (an embedding model?); per-token "
                "hidden states need a generative model"
            )
        self.hidden_states = enabled
        llama_lib.llama_set_embeddings(self._ctx.ctx, enabled)

    def next_hidden(self) -> npt.NDArray[np.float32]:
        """The final hidden state of the last token evaluated: what the output matrix turns
        into `next_logits()` (after the model's final norm, llama.cpp's `result_norm`), from
        the same decode. A view, valid until the next decode."""
        pointer = None
        if self.hidden_states and self.tokens:
            pointer = llama_lib.llama_get_embeddings_ith(self._ctx.ctx, -1)
        if not pointer:
            raise ValueError("no hidden state: call set_hidden_states(True) before evaluating")
        return np.ctypeslib.as_array(pointer, shape=(self.hidden_size,))

    def append_with_outputs(
        self, tokens: Sequence[int], *, hidden: bool, chunk: int = 64
    ) -> Iterator[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]]:
        """Evaluates `tokens` after the history, yielding for each of them the next-position
        logits and (with `hidden`) its final hidden state, both from one decode: a
        teacher-forced pass. The arrays are views, valid until the next iteration step.
        `chunk` tokens are decoded at a time, which bounds the output buffer
        (chunk x vocabulary floats)."""
        if len(self.tokens) + len(tokens) > self.n_ctx:
            raise ContextFullError(
                f"{len(self.tokens) + len(tokens)} tokens do not fit the context window of "
                f"{self.n_ctx}; raise the context size"
            )
        chunk = max(1, min(chunk, self.llama.n_batch))
        was_on = self.hidden_states
        llama_lib.llama_set_embeddings(self._ctx.ctx, hidden)
        try:
            for start in range(0, len(tokens), chunk):
                part = list(tokens[start : start + chunk])
                self.llama.n_tokens = len(self.tokens)
                self._ctx.kv_cache_seq_rm(-1, len(self.tokens), -1)
                self.llama._batch.set_batch(batch=part, n_past=len(self.tokens), logits_all=True)
                self._ctx.decode(self.llama._batch)
                self.tokens.extend(part)
                self.llama.n_tokens = len(self.tokens)
                self.evaluated_tokens += len(part)
                for index in range(len(part)):
                    logits = np.ctypeslib.as_array(
                        llama_lib.llama_get_logits_ith(self._ctx.ctx, index),
                        shape=(self.n_vocab,),
                    )
                    state = None
                    if hidden:
                        state = np.ctypeslib.as_array(
                            llama_lib.llama_get_embeddings_ith(self._ctx.ctx, index),
                            shape=(self.hidden_size,),
                        )
                    yield logits, state
        finally:
            llama_lib.llama_set_embeddings(self._ctx.ctx, was_on)

    def close(self) -> None:
        self.llama.close()
