"""SpanQuery → relay.v1 message, and TeacherClientSettings' checks."""

from __future__ import annotations

import pydantic
import pytest

from edge_client.errors import ConfigError
from edge_client.teacher.client import SpanQuery
from edge_client.teacher.settings import TeacherClientSettings
from edge_client.teacher.wire import span_request_to_proto
from relay_common.chat import ChatMessage
from relay_common.sampling import SamplingParams


def span(**context: object) -> SpanQuery:
    return SpanQuery(
        session_id="s", request_id="r", max_tokens=4, sampling=SamplingParams(), **context
    )


def test_unknown_role_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'tool'"):
        span_request_to_proto(span(messages=[ChatMessage("tool", "x")]))


@pytest.mark.parametrize(
    "context",
    [{}, {"token_ids": [1], "messages": [ChatMessage("user", "x")]}],
    ids=["neither", "both"],
)
def test_exactly_one_context_form(context) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        span_request_to_proto(span(**context))


def test_seed_is_sent_only_when_set() -> None:
    sampled = SamplingParams(temperature=0.5)
    message = span_request_to_proto(
        SpanQuery(session_id="s", request_id="r", max_tokens=4, sampling=sampled, token_ids=[1])
    )
    assert message.span.HasField("sampling")
    assert not message.span.sampling.HasField("seed")


def test_settings_reject_backoff_bounds_out_of_order() -> None:
    with pytest.raises(pydantic.ValidationError, match="backoff_max_s"):
        TeacherClientSettings(backoff_initial_s=3.0, backoff_max_s=1.0)


def test_settings_are_frozen_with_bounds() -> None:
    settings = TeacherClientSettings()
    with pytest.raises(pydantic.ValidationError):
        settings.attempts = 5  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="attempts"):
        TeacherClientSettings(attempts=0)
