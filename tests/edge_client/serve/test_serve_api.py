"""The OpenAI-compatible API of a real `relay-edge serve` (embedded SmolLM2 student, a real
SmolLM2 teacher on loopback: token mode), checked with the official `openai` client, curl and
raw HTTP; every answer against the ledger the server wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from edge_client.ledger.store import Ledger
from tests.edge_client.serve.conftest import RELAY_EDGE, Served, serve_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KEY = "serve-test-key-0123456789abcdef"
QUESTION = "Name three colours of the rainbow."
RELAY_COUNTS = ("student_tokens", "teacher_tokens", "teacher_calls", "fallback_spans")


@pytest.fixture(scope="module")
def served(serve_process, smollm2_teacher, tmp_path_factory) -> Served:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# who may call\ntests:{KEY}\n")
    # A threshold this high calls the teacher in nearly every answer: spans to check.
    return serve_process(
        "--teacher", smollm2_teacher, "--policy", "confidence", "--threshold", "0.9",
        "--span", "4", "--max-tokens", "40", "--temperature", "0",
        "--serve-api-key-file", str(keys),
    )  # fmt: skip


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, timeout=300, max_retries=0)


def ask(client: openai.OpenAI, model: str, question: str = QUESTION, **kwargs):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], **kwargs
    )


def assert_matches_ledger(relay: dict, ledger: Ledger) -> None:
    """usage.relay: the answer's counts equal its row in the ledger, the session's the
    session's row."""
    session = ledger.session(relay["session_id"])
    assert session is not None
    answer = ledger.answers(relay["session_id"])[-1]
    for name in RELAY_COUNTS:
        assert relay[name] == getattr(answer.usage, name), name
        assert relay["session"][name] == getattr(session.usage, name), name
    assert relay["offload_ratio"] == pytest.approx(answer.usage.offload_ratio, abs=1e-6)
    assert relay["session"]["offload_ratio"] == pytest.approx(session.usage.offload_ratio, abs=1e-6)
    assert answer.finish_reason == relay["finish_reason"]


def test_models_lists_the_student_and_health_says_who_teaches(client, served):
    assert [model.id for model in client.models.list()] == [served.model]
    health = httpx.get(f"{served.url}/health", timeout=30).json()
    assert health["status"] == "ok"
    assert (health["mode"], health["teacher_state"], health["policy"]) == (
        "token",
        "online",
        "confidence",
    )


def test_a_non_streamed_answer_with_its_usage_equal_to_the_ledger(client, served):
    completion = ask(client, served.model)
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    usage = completion.usage
    relay = usage.model_extra["relay"]
    assert usage.completion_tokens == relay["student_tokens"] + relay["teacher_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert relay["teacher_tokens"] > 0 and relay["teacher_state"] == "online"
    # No session named: the request is a session of its own.
    assert relay["session"]["student_tokens"] == relay["student_tokens"]
    with served.ledger() as ledger:
        assert_matches_ledger(relay, ledger)
        assert ledger.session(relay["session_id"]).policy == "confidence"
    # `relay-edge usage` shows serve's sessions with the others.
    shown = subprocess.run(
        [RELAY_EDGE, "usage", "--session", relay["session_id"], "--json"],
        env=serve_env(served.ledger_path.parent),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [session] = json.loads(shown.stdout)["sessions"]
    assert session["usage"]["teacher_tokens"] == relay["session"]["teacher_tokens"]


def test_a_streamed_answer_says_who_wrote_each_piece(client, served):
    stream = ask(client, served.model, stream=True, stream_options={"include_usage": True})
    pieces, finishes, usages = [], [], []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append((choice.delta.model_extra["relay"]["source"], choice.delta.content))
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        if chunk.usage is not None:
            usages.append(chunk.usage)
    assert finishes in (["stop"], ["length"])
    [usage] = usages  # one usage chunk, the last
    relay = usage.model_extra["relay"]
    sources = {source for source, _ in pieces}
    assert sources <= {"student", "teacher", "fallback"}
    assert "teacher" in sources and relay["teacher_tokens"] > 0
    assert "fallback" not in sources and relay["fallback_spans"] == 0
    with served.ledger() as ledger:
        assert_matches_ledger(relay, ledger)


def test_a_follow_up_turn_evaluates_only_its_new_tokens(client, served):
    session = {"x-relay-session": "two-turns"}
    first = ask(client, served.model, "What is the capital of France?", extra_headers=session)
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "And of Italy?"}]},
    ]
    second = client.chat.completions.create(
        model=served.model, messages=messages, extra_headers=session
    )
    one, two = first.usage, second.usage
    assert one.model_extra["relay"]["session_id"] == "two-turns"
    assert two.model_extra["relay"]["session_id"] == "two-turns"
    # The first turn and its answer are in the student's KV cache: the whole first prompt and
    # (when the answer's text tokenizes back to the tokens written) its answer are reused.
    cached = two.prompt_tokens_details.cached_tokens
    assert cached >= one.prompt_tokens
    evaluated = two.prompt_tokens - cached
    assert evaluated < two.prompt_tokens - one.prompt_tokens
    with served.ledger() as ledger:
        answers = ledger.answers("two-turns")
        assert_matches_ledger(two.model_extra["relay"], ledger)
    # The ledger counts the prompt tokens evaluated: each turn's new ones.
    assert len(answers) == 2
    assert (
        answers[0].usage.prompt_tokens
        == one.prompt_tokens - one.prompt_tokens_details.cached_tokens
    )
    assert answers[1].usage.prompt_tokens == evaluated


def test_the_user_field_names_the_session(client, served):
    ask(client, served.model, max_tokens=4, user="alice")
    ask(client, served.model, max_tokens=4, user="alice")
    with served.ledger() as ledger:
        assert len(ledger.answers("alice")) == 2


def test_a_stop_string_ends_the_answer_before_it(client, served):
    # Any English answer holds an "e": the answer ends before its first one.
    completion = ask(client, served.model, stop=["e", "zzz"])
    content = completion.choices[0].message.content
    assert "e" not in content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.model_extra["relay"]["finish_reason"] == "stop_string"

    streamed = ask(client, served.model, stop="e", stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert "e" not in text
    assert text == content  # greedy, same prompt, same cache state: the same cut answer


def test_n_other_than_one_is_refused(client, served):
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, served.model, n=2)
    assert refused.value.body["param"] == "n"
    assert "n = 1" in refused.value.body["message"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_raw_event_stream(served):
    body = {
        "model": served.model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 12,
        "stream": True,
    }
    done = subprocess.run(
        ["curl", "-sN", f"{served.url}/v1/chat/completions",
         "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
         "-d", json.dumps(body)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    events = done.stdout.split("\n\n")
    assert events[-1] == ""  # the stream ends with a complete event
    # Keep-alive comments (": ping") may come between events on a slow machine.
    data = [event for event in events[:-1] if not event.startswith(":")]
    assert all(event.startswith("data: ") and "\n" not in event for event in data)
    assert data[-1] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in data[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1


def user(content: object) -> list[dict[str, object]]:
    return [{"role": "user", "content": content}]


BAD_REQUESTS = [
    # (what, body or raw bytes, headers, status, param, words in the message)
    ("invalid JSON", b'{"model": ', None, 400, None, "not valid JSON"),
    ("not an object", b"[1, 2]", None, 400, None, "JSON object"),
    ("max_tokens a string", {"messages": user("hi"), "max_tokens": "ten"}, None, 400,
     "max_tokens", "integer"),
    ("stream a number", {"messages": user("hi"), "stream": 1}, None, 400, "stream", "boolean"),
    ("no messages", {"messages": []}, None, 400, "messages", "at least 1"),
    ("unknown role", {"messages": [{"role": "wizard", "content": "hi"}]}, None, 400,
     "messages.0.role", "'user'"),
    ("image part", {"messages": user([{"type": "image_url", "image_url": {}}])}, None, 400,
     "messages.0.content", "text parts"),
    ("negative max_tokens", {"messages": user("hi"), "max_tokens": -3}, None, 400,
     "max_tokens", "greater than or equal to 1"),
    ("2 MB prompt", {"messages": user("relay " * 350_000)}, None, 400, "messages",
     "context holds"),
    ("unknown model", {"model": "gpt-4o", "messages": user("hi")}, None, 404, "model",
     "does not exist"),
    ("1 MB model name", {"model": "m" * (1 << 20), "messages": user("hi")}, None, 404, "model",
     "(1,048,576 characters)"),  # quoted cut short, not echoed whole
    ("tools", {"messages": user("hi"), "tools": [{"type": "function"}]}, None, 400, "tools",
     "not supported"),
    ("missing key", {"messages": user("hi")}, {}, 401, None, "Bearer"),
    ("wrong key", {"messages": user("hi")}, {"authorization": "Bearer " + "x" * 32}, 401, None,
     "not valid"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "body", "headers", "status", "param", "words"),
    BAD_REQUESTS,
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_openai_errors_and_the_server_goes_on(
    served, what, body, headers, status, param, words
):
    if isinstance(body, dict):
        body = json.dumps({"model": served.model, **body}).encode()
    sent = {"authorization": f"Bearer {KEY}"} if headers is None else headers
    response = httpx.post(
        f"{served.url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json", **sent},
        timeout=300,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert words in error["message"]
    assert "Traceback" not in response.text
    # The server goes on serving.
    assert httpx.get(f"{served.url}/health", timeout=30).json()["status"] == "ok"


def test_after_the_bad_requests_an_answer_still_comes(client, served):
    assert ask(client, served.model, max_tokens=4).choices[0].message.content


def test_an_exposed_address_without_keys_is_refused(tmp_path: Path):
    done = subprocess.run(
        [RELAY_EDGE, "serve", "--host", "0.0.0.0", "--teacher-free"],
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--serve-api-key-file" in done.stderr and "--allow-insecure" in done.stderr
    assert "Traceback" not in done.stderr
