"""The loop tells policies where a line starts (what the step policy keys on), with the real
student writing a multi-line answer."""

from __future__ import annotations

from edge_client.policies.base import Policy, Step
from edge_client.relay.events import TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from relay_common.chat import ChatMessage


class _Recorder(Policy):
    """Never calls; notes, before each token, whether the policy was told a line starts."""

    name = "recorder"

    def __init__(self) -> None:
        self.line_starts: list[bool] = []

    def decide(self, step: Step) -> int:
        self.line_starts.append(step.at_line_start)
        return 0


def test_at_line_start_follows_the_answer_text(student):
    policy = _Recorder()
    session = RelaySession(
        student=student, teacher=None, policy=policy, options=RelayOptions(max_tokens=40)
    )
    messages = [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    texts = [e.text for e in session.answer(messages) if isinstance(e, TokensAppended)]
    expected = [True] + ["".join(texts[: i + 1]).endswith("\n") for i in range(len(texts) - 1)]
    assert policy.line_starts[: len(expected)] == expected
    assert any(expected[1:]), "the answer should span several lines"
