"""Which context each session sent last, as far as the vLLM engine knows: a hint of what vLLM's
prefix cache holds for it (vLLM may have evicted it since). No vLLM here.

    contexts = SessionContexts(max_sessions=10_000)
    new = contexts.uncached(("tenant", "session"), tokens)   # tokens past the last context
    contexts.remember(("tenant", "session"), tokens)

Only a length and a digest are kept per session, never the tokens.
"""

from __future__ import annotations

import array
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

SessionKey = tuple[str, str]  # (tenant, session_id)


def _digest(tokens: Sequence[int]) -> bytes:
    return hashlib.blake2b(array.array("I", tokens).tobytes(), digest_size=16).digest()


class SessionContexts:
    def __init__(self, *, max_sessions: int) -> None:
        self._max_sessions = max_sessions
        self._last: OrderedDict[SessionKey, tuple[int, bytes]] = OrderedDict()

    def uncached(self, key: SessionKey, tokens: Sequence[int]) -> int:
        """How many of `tokens` follow the session's last context, when they begin with it;
        all of them otherwise."""
        last = self._last.get(key)
        if last is None:
            return len(tokens)
        length, digest = last
        if length > len(tokens) or _digest(tokens[:length]) != digest:
            return len(tokens)
        return len(tokens) - length

    def remember(self, key: SessionKey, tokens: Sequence[int]) -> None:
        self._last[key] = (len(tokens), _digest(tokens))
        self._last.move_to_end(key)
        while len(self._last) > self._max_sessions:
            self._last.popitem(last=False)
