"""The rule that accepts or rejects a draft's tokens (relay.v1 `Draft`), the same for every
engine. Pure arithmetic over the teacher's next-token distribution at each draft position.

    if rejects(draft, token=t, top_token=top, token_logprob=lp): ...   # from log-probabilities
    if rejects_logits(draft, logits, token=t): ...                     # from raw logits

The distribution is the softmax of the teacher's logits at temperature 1, whatever the span's
sampling: the rule asks how plausible the student's token is to the teacher, not what the
teacher would sample.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cloud_teacher.requests import Draft


def rejects(draft: Draft, *, token: int, top_token: int, token_logprob: float) -> bool:
    """True where the teacher rejects `token`: below `min_prob`, and not its own top token
    when `accept_top_token` says that one always passes."""
    if draft.accept_top_token and token == top_token:
        return False
    return math.exp(token_logprob) < draft.min_prob


def rejects_logits(draft: Draft, logits: npt.NDArray[np.float32], *, token: int) -> bool:
    """`rejects`, from the teacher's raw logits at the position `token` was drafted for."""
    top_token = int(np.argmax(logits))
    if draft.accept_top_token and token == top_token:
        return False  # the common case, decided without the softmax
    # log p(token) = logit - logsumexp(logits), in float64 with the maximum subtracted; no
    # np.dot (a BLAS call would start OpenBLAS threads on the engine's cores).
    shifted = logits.astype(np.float64) - float(logits[top_token])
    token_logprob = float(shifted[token]) - math.log(float(np.exp(shifted).sum()))
    return rejects(draft, token=token, top_token=top_token, token_logprob=token_logprob)
