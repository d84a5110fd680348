"""Text-mode prompts from a Hugging Face tokenizer: the chat template, then the partial answer.

    renderer = HfChatRenderer(tokenizer, template_kwargs={"enable_thinking": False})
    token_ids = renderer.render_continuation(messages, assistant_prefix)

The same semantics as `GgufModel.render_continuation` (relay_common/gguf.py): the template
opens the assistant's turn and the partial answer follows as plain text; a model without a
template of its own gets `PLAIN_CHAT_TEMPLATE`, whose open answer needs the space before the
prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from cloud_teacher.errors import InvalidRequestError
from relay_common.chat import ChatMessage
from relay_common.echo import clipped
from relay_common.gguf import PLAIN_CHAT_TEMPLATE


class HfChatRenderer:
    def __init__(self, tokenizer: Any, *, template_kwargs: Mapping[str, Any]) -> None:
        self._tokenizer = tokenizer
        self._template_kwargs = dict(template_kwargs)
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))

    def render_continuation(
        self, messages: Sequence[ChatMessage], assistant_prefix: str
    ) -> list[int]:
        prompt = self._render(messages)
        bos = self._tokenizer.bos_token or ""
        # Templates that write the BOS text themselves must not get a second BOS token.
        ids = list(
            self._tokenizer.encode(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))
        )
        if not assistant_prefix:
            return ids
        if not self.has_chat_template:
            assistant_prefix = " " + assistant_prefix  # after "Answer:" (see the template)
        return ids + list(self._tokenizer.encode(assistant_prefix, add_special_tokens=False))

    def _render(self, messages: Sequence[ChatMessage]) -> str:
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return self._tokenizer.apply_chat_template(
                conversation,
                chat_template=None if self.has_chat_template else PLAIN_CHAT_TEMPLATE,
                tokenize=False,
                add_generation_prompt=True,
                **self._template_kwargs,
            )
        except jinja2.TemplateError as exc:  # e.g. the template's raise_exception()
            raise InvalidRequestError(
                f"the teacher's chat template refuses this conversation: {clipped(str(exc))}; "
                "check the roles and their order"
            ) from exc
