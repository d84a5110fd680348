"""The prompt of `relay-edge ask`: from the argument, or standard input for `-`; and a prompt
the student's context cannot hold is an error, not an empty answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from edge_client.errors import ConfigError, PromptTooLongError
from edge_client.student.engine import StudentEngine
from relay_common.chat import ChatMessage

STDIN = "-"


def read_prompt(argument: str, *, stdin: TextIO) -> str:
    """`argument`, or all of standard input when it is `-`."""
    if argument != STDIN:
        return argument
    text = stdin.read()
    if not text.strip():
        raise ConfigError(
            "standard input held no prompt; pipe one in: echo 'What is 17 * 23?' | relay-edge ask -"
        )
    return text


def ensure_prompt_fits(
    student: StudentEngine, messages: Sequence[ChatMessage], *, n_ctx: int
) -> int:
    """The rendered prompt's length in tokens; PromptTooLongError when it leaves no room for
    an answer."""
    prompt_tokens = len(student.render_prompt(messages))
    if prompt_tokens >= n_ctx:
        raise PromptTooLongError(
            f"the prompt is {prompt_tokens} tokens and the student's context holds {n_ctx}; "
            "shorten the prompt or raise n_ctx (RELAY_N_CTX or the config file)"
        )
    return prompt_tokens
