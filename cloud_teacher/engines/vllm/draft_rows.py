"""Reading a draft's verdict from vLLM's prompt logprobs. No vLLM import: the rows are read by
attribute (vLLM's `Logprob`: `.logprob`, `.rank`).

    accepted = accepted_tokens(draft, rows, start=len(context))

With `prompt_logprobs=1` vLLM gives, at each prompt position but the first, the log-probability
of the prompt token there and the model's top-1 token (rank 1) from the position before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cloud_teacher.drafts import rejects
from cloud_teacher.requests import Draft

# One entry per prompt position: token id -> its vLLM `Logprob`; None for the first position.
PromptRows = Sequence[Mapping[int, Any] | None]


def accepted_tokens(draft: Draft, rows: PromptRows, *, start: int) -> int:
    """The draft tokens accepted before the first rejected one; the draft begins at prompt
    position `start` (the context's length)."""
    for index, token in enumerate(draft.token_ids):
        row = rows[start + index]
        if row is None or token not in row:
            raise ValueError(f"vLLM gave no prompt logprob for draft position {index}")
        top_token = next(
            (candidate for candidate, scored in row.items() if scored.rank == 1), token
        )
        if rejects(draft, token=token, top_token=top_token, token_logprob=row[token].logprob):
            return index
    return len(draft.token_ids)
