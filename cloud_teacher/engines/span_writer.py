"""Turning one span's sampled tokens into pieces: end-of-generation tokens, UTF-8 pieces cut
across tokens, an answer that never starts with white space, the turn markers that end a
base model's answer in text mode, and the line break that ends a `stop_at_line_end` span.
No llama.cpp calls beyond the tokenizer.

    writer = SpanWriter(model, request)
    pieces, finish = writer.take(token)   # pieces to emit; a FinishReason once the span ends
    pieces, tail_text = writer.close()    # held-back pieces and pending bytes at the end
"""

from __future__ import annotations

import codecs

from cloud_teacher.requests import SpanRequest, TextContext, TokenContext
from cloud_teacher.spans import FinishReason, Piece
from relay_common.gguf import PLAIN_TURN_MARKERS, GgufModel
from relay_common.line_end import LineEnd
from relay_common.stop_strings import StopScanner


class SpanWriter:
    def __init__(self, model: GgufModel, request: SpanRequest) -> None:
        self._model = model
        self._max_tokens = request.max_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._scanner = _turn_scanner(model, request.context)
        self._text_mode = isinstance(request.context, TextContext)
        self._at_answer_start = isinstance(request.context, TextContext) and not (
            request.context.assistant_prefix
        )
        self._line_end = LineEnd() if request.stop_at_line_end else None
        self._ended_at_line = False
        self.sampled = 0

    def take(self, token: int) -> tuple[list[Piece], FinishReason | None]:
        """The pieces `token` releases, and how the span ended if it did."""
        self.sampled += 1
        if self._model.is_end(token):
            return [], FinishReason.END_OF_ANSWER
        text = self._decoder.decode(self._model.piece(token))
        if self._at_answer_start:  # an answer does not begin with white space
            text = text.lstrip()
            self._at_answer_start = not text
        released, stopped = (
            self._scanner.feed(token, text) if self._scanner else ([(token, text)], False)
        )
        pieces = [
            Piece(token_ids=(token_id,), text=piece_text) for token_id, piece_text in released
        ]
        if self._line_end is not None:
            pieces, self._ended_at_line = self._line_end.cut(pieces)
            if self._ended_at_line:  # what the scanner still holds comes after the line
                return pieces, FinishReason.LINE_END
        if stopped:
            return pieces, FinishReason.END_OF_ANSWER
        if self.sampled >= self._max_tokens:
            return pieces, FinishReason.LENGTH
        return pieces, None

    def close(self) -> tuple[list[Piece], str]:
        """Pieces still held back by the stop scanner, and the text of pending bytes (a
        character cut by max_tokens).

        In text mode the edge continues from the text alone, so a cut character would become
        U+FFFD for good: it is left out, and the next span, continuing the text, writes it
        whole. In token mode the edge reads the token ids; the text is for display only.
        """
        held = self._scanner.flush() if self._scanner and not self._ended_at_line else []
        pieces = [Piece(token_ids=(token_id,), text=text) for token_id, text in held]
        pending = self._decoder.decode(b"", final=True)
        return pieces, "" if self._text_mode else pending


def _turn_scanner(model: GgufModel, context: TokenContext | TextContext) -> StopScanner | None:
    """Text mode on a base model: a new turn marker ends the answer (see stop_strings)."""
    if isinstance(context, TokenContext) or model.has_chat_template:
        return None
    return StopScanner(PLAIN_TURN_MARKERS, primed_with=context.assistant_prefix)
