"""The vLLM KV cache on a CPU is sized from what the model needs, capped by the memory that is
free, never a share of all RAM: arithmetic here, the real start in test_cloud_vllm_cli.py."""

from __future__ import annotations

import pytest

from cloud_teacher.engines.vllm.cpu_memory import CpuKvNeed, GiB, cpu_kv_cache_bytes
from cloud_teacher.errors import ConfigError

# SmolLM2-135M in bfloat16: 30 layers x keys and values x 3 KV heads x 64 x 2 bytes.
SMOLLM2 = CpuKvNeed(bytes_per_token=23_040, block_size=32, max_model_len=4096, max_num_seqs=64)


def test_the_cache_holds_every_sequence_when_memory_allows() -> None:
    size = cpu_kv_cache_bytes(SMOLLM2, free_bytes=20 * GiB)
    assert size == 64 * 4096 * 23_040  # 5.6 GiB, however large the machine


def test_a_whole_block_is_allocated_for_a_partial_one() -> None:
    need = CpuKvNeed(bytes_per_token=10, block_size=32, max_model_len=100, max_num_seqs=2)
    assert need.one_sequence_bytes == 128 * 10
    assert cpu_kv_cache_bytes(need, free_bytes=GiB) == 2 * 128 * 10


def test_on_a_busy_machine_it_takes_half_of_what_is_free() -> None:
    size = cpu_kv_cache_bytes(SMOLLM2, free_bytes=4 * GiB)
    assert size == 2 * GiB


def test_too_little_memory_for_one_sequence_says_what_to_lower() -> None:
    with pytest.raises(ConfigError) as raised:
        cpu_kv_cache_bytes(SMOLLM2, free_bytes=100 << 20)
    message = str(raised.value)
    assert "--n-ctx" in message and "kv_cache_gib" in message
    assert "\n" not in message


def test_an_explicit_size_is_kept_when_it_fits_and_named_when_it_does_not() -> None:
    assert cpu_kv_cache_bytes(SMOLLM2, free_bytes=8 * GiB, explicit_bytes=GiB) == GiB
    with pytest.raises(ConfigError) as raised:
        cpu_kv_cache_bytes(SMOLLM2, free_bytes=8 * GiB, explicit_bytes=100 * GiB)
    message = str(raised.value)
    assert "100.00 GiB" in message
    assert "RELAY_TEACHER_VLLM__KV_CACHE_GIB" in message and "VLLM_CPU_KVCACHE_SPACE" in message
