"""One relayed answer for the relay tests: the session, its events, the token ids appended and
how many tokens the student evaluated for it."""

from __future__ import annotations

from edge_client.policies.base import Policy
from edge_client.relay.events import TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession


def answer(student, teacher, policy: Policy, messages, *, max_tokens: int = 40):
    session = RelaySession(
        student=student,
        teacher=teacher,
        policy=policy,
        options=RelayOptions(max_tokens=max_tokens),
    )
    before = student.evaluated_tokens
    events = list(session.answer(messages))
    evaluated = student.evaluated_tokens - before
    ids = [t for e in events if isinstance(e, TokensAppended) for t in e.token_ids]
    return session, events, ids, evaluated
