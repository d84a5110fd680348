"""The policy interface the relay loop consults at every position."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Step:
    """What a policy sees before the student writes the next token."""

    logits: npt.NDArray[np.float32]  # the student's next-position logits (read-only view)
    position: int  # tokens generated so far in this answer
    tokens_since_call: int | None  # tokens since the last teacher call in this answer, if any
    teacher_tokens_used: int  # teacher tokens appended so far in this session
    line_so_far: str = ""  # the answer's current line before this position ("": a line starts)
    # The student's final hidden state behind `logits` (read-only view); only for a policy
    # that sets `needs_hidden`, None otherwise.
    hidden: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class DraftChecks:
    """How the teacher checks the student's drafts (the verify policy, token mode only)."""

    accept_prob: float  # a draft token the teacher gives less is rejected, unless its own top
    draft: int  # student tokens per check
    span: int  # teacher tokens written where it rejects one
    window: int  # tokens the student may draft past a check in flight (0: it waits)


@dataclass(frozen=True, slots=True)
class Released:
    """A student token the policy has finished looking at. `text` is what the user sees of it;
    `command` marks tokens that belong to a `<call>` command (kept in the student's history,
    hidden from the user and from the teacher)."""

    token_id: int
    text: str
    command: bool = False


class Policy(ABC):
    """Decides, position by position, whether the teacher writes the next span.

        policy.start_answer()
        n = policy.decide(step)           # > 0: ask the teacher for n tokens now
        released = policy.observe(tok, text)   # after each student token
        released += policy.flush()        # at the end of the answer

    Only `decide` is required; `observe` passes tokens straight through unless a policy
    reads the student's own output (the `command` policy).
    """

    name: str = ""
    # True: the teacher's span ends with its first non-empty line (a reasoning step), or at
    # the span length asked for, whichever comes first.
    span_ends_at_line: bool = False
    # Set: the student drafts and the teacher checks every draft (token mode); `decide` only
    # serves where drafts cannot be checked (a teacher in text mode).
    draft_checks: DraftChecks | None = None
    # True: each Step carries the student's final hidden state (the student keeps it only
    # for such a policy, so the others pay nothing for it).
    needs_hidden: bool = False

    def start_answer(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Called before each answer of a session."""

    @abstractmethod
    def decide(self, step: Step) -> int:
        """Tokens to ask the teacher for at this position; 0 lets the student write."""

    def observe(self, token_id: int, text: str) -> list[Released]:
        """Sees each student-written token; returns the tokens it no longer holds back."""
        return [Released(token_id, text)]

    def flush(self) -> list[Released]:
        """Releases whatever is still held back when the answer ends."""
        return []
