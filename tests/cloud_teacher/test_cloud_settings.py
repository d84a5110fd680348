"""Settings: flags over environment over config file over defaults; one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_teacher.errors import ConfigError
from cloud_teacher.settings import load_settings


@pytest.fixture(autouse=True)
def no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "PORT", "HOST", "SLOTS", "KV_SESSIONS", "N_CTX", "MAX_SPAN_TOKENS", "MAX_CONTEXT_TOKENS",
    ):  # fmt: skip
        monkeypatch.delenv(f"RELAY_TEACHER_{name}", raising=False)


def test_flags_override_environment_which_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "teacher.toml"
    config.write_text('port = 1111\nslots = 3\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("RELAY_TEACHER_PORT", "2222")
    monkeypatch.setenv("RELAY_TEACHER_SLOTS", "5")

    settings = load_settings(config_file=config, slots=7)

    assert (settings.host, settings.port, settings.slots) == ("0.0.0.0", 2222, 7)


def test_max_context_tokens_defaults_to_what_the_window_leaves() -> None:
    limits = load_settings(n_ctx=2048, max_span_tokens=48).limits
    assert (limits.max_span_tokens, limits.max_context_tokens) == (48, 2000)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"slots": 0}, "slots"),
        ({"n_ctx": 1024, "max_context_tokens": 1000, "max_span_tokens": 64}, "must fit n_ctx"),
        ({"n_ctx": 128, "max_span_tokens": 256}, "no room"),
        ({"engine": "tgi"}, "unknown engine"),
        ({"slots": 9, "kv_sessions": 8}, "raise kv_sessions or lower slots"),
    ],
)
def test_bad_values_are_a_config_error(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as raised:
        load_settings(**overrides)
    assert "\n" not in str(raised.value)


def test_unknown_keys_and_bad_files_are_config_errors(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("prot = 50052\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings(config_file=typo)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(config_file=broken)
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config_file=tmp_path / "missing.toml")
