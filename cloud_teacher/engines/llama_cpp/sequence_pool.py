"""Which llama.cpp sequence holds which session's KV prefix. Pure bookkeeping, no llama.cpp.

The context has a fixed number of sequences, each with its own window of KV cells (the cell
budget is sequences x window). A session's later call goes back to its own sequence and reuses
the longest prefix it shares with what that sequence holds. A new session takes an empty
sequence, else the least recently used idle one, whose tokens are then forgotten (evicted).
Sequences are keyed by tenant and session, so one tenant's request never reads another
tenant's cached tokens.

    pool = SequencePool(16)
    claim = pool.claim(owner=("tenant", "session"), prompt=tokens)  # None: all busy
    claim.sequence.seq_id, claim.keep, claim.evicted     # drop KV past `keep`
    pool.release(claim.sequence)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

Owner = tuple[str, str]  # (tenant, session_id)


@dataclass(slots=True)
class CachedSequence:
    seq_id: int
    owner: Owner | None = None
    tokens: list[int] = field(default_factory=list)  # what its KV cells hold, in order
    busy: bool = False
    last_used: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    sequence: CachedSequence
    keep: int  # tokens of the sequence's KV to keep; the caller drops the rest
    evicted: bool  # it held another session's tokens, all dropped now


class SequencePool:
    def __init__(self, n_sequences: int) -> None:
        if n_sequences < 1:
            raise ValueError("a sequence pool needs at least one sequence")
        self.sequences = [CachedSequence(seq_id) for seq_id in range(n_sequences)]
        self._clock = itertools.count(1)

    def claim(self, *, owner: Owner, prompt: Sequence[int]) -> Claim | None:
        """A sequence for `owner`'s next span over `prompt`, or None while all are busy.

        `keep` never covers the whole prompt: its last token is evaluated again, since
        llama.cpp holds logits only for the positions of the last decode.
        """
        idle = [sequence for sequence in self.sequences if not sequence.busy]
        if any(sequence.owner == owner for sequence in self.sequences if sequence.busy):
            return None  # one span per session at a time: its KV is in use
        own = next((sequence for sequence in idle if sequence.owner == owner), None)
        chosen = own or next((s for s in idle if s.owner is None), None)
        if chosen is None:
            chosen = min(idle, key=lambda sequence: sequence.last_used, default=None)
        if chosen is None:
            return None
        evicted = chosen.owner not in (None, owner)
        if evicted:
            chosen.tokens.clear()
        keep = min(shared_prefix(chosen.tokens, prompt), len(prompt) - 1)
        del chosen.tokens[keep:]
        chosen.owner = owner
        chosen.busy = True
        chosen.last_used = next(self._clock)
        return Claim(sequence=chosen, keep=keep, evicted=evicted)

    def release(self, sequence: CachedSequence) -> None:
        sequence.busy = False
        sequence.last_used = next(self._clock)

    def forget(self, sequence: CachedSequence) -> None:
        """Marks a sequence empty (its KV cells were cleared)."""
        sequence.owner = None
        sequence.tokens.clear()


def shared_prefix(held: Sequence[int], wanted: Sequence[int]) -> int:
    shared = 0
    for a, b in zip(held, wanted, strict=False):
        if a != b:
            break
        shared += 1
    return shared
