"""serve's parts without a server: the flags it shares with chat, its settings' sources, the
stop-string cut of an answer's text, and request validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from edge_client.cli.app import app
from edge_client.errors import ConfigError
from edge_client.relay.events import Source, TokensAppended
from edge_client.serve.answer_text import AnswerText, Piece
from edge_client.serve.keys import ApiKeys
from edge_client.serve.requests import parse_chat_request
from edge_client.settings import EdgeSettings, load_settings


def flags_of(command: str) -> set[str]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {option for param in click_command.params for option in param.opts}


def test_serve_takes_every_flag_chat_takes_and_its_own():
    serve = flags_of("serve")
    assert flags_of("chat") <= serve
    assert {"--host", "--port", "--serve-api-key-file", "--allow-insecure", "--queue"} <= serve


def test_serve_settings_come_from_flags_environment_and_the_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('threshold = 0.3\n[serve]\nport = 9001\nhost = "127.0.0.2"\n')
    monkeypatch.setenv("RELAY_SERVE__QUEUE", "3")
    settings = load_settings(config_file=config, serve={"port": 9002})
    assert (settings.serve.port, settings.serve.host, settings.serve.queue) == (
        9002,  # the flag wins over the file
        "127.0.0.2",  # the file fills what flags and environment leave
        3,
    )
    assert settings.threshold == 0.3
    assert EdgeSettings().serve.port == 8080


def test_a_bad_serve_setting_names_itself(tmp_path):
    with pytest.raises(ConfigError, match=r"serve\.port"):
        load_settings(config_file=None, serve={"port": 70000})


def tokens(*pieces: tuple[Source, str]) -> list[TokensAppended]:
    return [TokensAppended(source, (index,), text) for index, (source, text) in enumerate(pieces)]


def test_answer_text_cuts_at_a_stop_string_across_sources():
    text = AnswerText(stops=("END",))
    released: list[Piece] = []
    for event in tokens(
        (Source.STUDENT, "one "), (Source.TEACHER, "two E"), (Source.TEACHER, "N"),
        (Source.STUDENT, "D three"),
    ):  # fmt: skip
        released += text.add(event)
    released += text.finish()
    assert text.stopped
    assert text.text == "one two "
    assert released == [Piece(Source.STUDENT, "one "), Piece(Source.TEACHER, "two ")]


def test_answer_text_without_a_stop_releases_everything_joined_by_source():
    text = AnswerText()
    released: list[Piece] = []
    for event in tokens((Source.STUDENT, "a"), (Source.STUDENT, "b"), (Source.FALLBACK, "c")):
        released += text.add(event)
    assert released == [Piece(Source.STUDENT, "a"), Piece(Source.STUDENT, "b"),
                        Piece(Source.FALLBACK, "c")]  # fmt: skip
    assert text.finish() == [] and not text.stopped


def test_text_held_back_as_a_possible_stop_is_released_when_it_is_not_one():
    text = AnswerText(stops=("\n\n",))
    first, second, last = tokens(
        (Source.STUDENT, "a\n"), (Source.TEACHER, "b\n"), (Source.TEACHER, "c")
    )
    assert text.add(first) == []  # it may begin "\n\n"
    assert text.add(second) == [Piece(Source.STUDENT, "a\n")]
    assert text.add(last) == [Piece(Source.TEACHER, "b\nc")]
    assert text.finish() == [] and text.text == "a\nb\nc"


def test_request_fields_map_onto_the_relay_options():
    request = parse_chat_request(
        b'{"model": "m", "messages": [{"role": "developer", "content": "be brief"},'
        b' {"role": "user", "content": [{"type": "text", "text": "a"},'
        b' {"type": "text", "text": "b"}]}],'
        b' "max_completion_tokens": 7, "max_tokens": 99, "temperature": 1, "seed": 4,'
        b' "stop": "x", "frequency_penalty": 0.5}'
    )
    options = request.relay_options(EdgeSettings(top_p=0.9))
    assert [(m.role, m.content) for m in request.chat_messages()] == [
        ("system", "be brief"),
        ("user", "a\nb"),
    ]
    assert options.max_tokens == 7  # max_completion_tokens wins
    assert (options.sampling.temperature, options.sampling.top_p, options.sampling.seed) == (
        1.0,
        0.9,  # not in the request: the server's setting
        4,
    )
    assert options.stop == ("x",)


def test_api_keys_from_a_file(tmp_path: Path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# keys\napp:0123456789abcdef0123\nfedcba9876543210fedc\n")
    keys = ApiKeys.from_file(keys_file)
    assert keys.accepts("0123456789abcdef0123") and keys.accepts("fedcba9876543210fedc")
    assert not keys.accepts("app:0123456789abcdef0123") and not keys.accepts("")
    keys_file.write_text("short\n")
    with pytest.raises(ConfigError, match="line 1: a key must be at least 16"):
        ApiKeys.from_file(keys_file)
    with pytest.raises(ConfigError, match="cannot read"):
        ApiKeys.from_file(tmp_path / "missing.txt")
