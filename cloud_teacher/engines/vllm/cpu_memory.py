"""The KV cache of the vLLM engine on a CPU: sized from what the model needs, never from a share
of the machine's memory. Pure arithmetic; engine.py reads the figures from vLLM.

On the CPU backend vLLM reads `gpu_memory_utilization` as the share of all RAM to reserve, and
refuses to start when that much is not free: 0.9 asks for 90 % of the machine, so any other
process in memory stops it. Here the cache gets what `max_num_seqs` sequences of
`max_model_len` tokens take, capped by half the memory free after the weights (the other half
stays for activations and the machine's other processes), and vLLM is given that size.

    size = cpu_kv_cache_bytes(CpuKvNeed(bytes_per_token=23_040, block_size=32,
                                        max_model_len=4096, max_num_seqs=64),
                              free_bytes=available - weights)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cloud_teacher.errors import ConfigError

GiB = 1 << 30
# Of the memory free after the weights, the share the KV cache may take by default.
FREE_SHARE = 0.5
_KV_SETTING = "[vllm] kv_cache_gib (RELAY_TEACHER_VLLM__KV_CACHE_GIB)"


@dataclass(frozen=True, slots=True)
class CpuKvNeed:
    """What the model's KV cache holds per token, and how many tokens it should hold."""

    bytes_per_token: int  # keys and values of every layer
    block_size: int  # vLLM allocates a sequence's cache in whole blocks
    max_model_len: int
    max_num_seqs: int

    @property
    def one_sequence_bytes(self) -> int:
        """One sequence of `max_model_len` tokens: vLLM will not start with less."""
        blocks = math.ceil(self.max_model_len / self.block_size)
        return blocks * self.block_size * self.bytes_per_token

    @property
    def wanted_bytes(self) -> int:
        return self.max_num_seqs * self.one_sequence_bytes


def cpu_kv_cache_bytes(
    need: CpuKvNeed, *, free_bytes: int, explicit_bytes: int | None = None
) -> int:
    """The KV cache to give vLLM on a CPU: `explicit_bytes` (kv_cache_gib, or vLLM's own
    VLLM_CPU_KVCACHE_SPACE) as it is, else what `need` wants, capped by FREE_SHARE of
    `free_bytes` (the memory available after the weights). `ConfigError`, naming the setting
    to lower, when that cannot hold one sequence or the explicit size does not fit."""
    if explicit_bytes is not None:
        if explicit_bytes > free_bytes:
            raise ConfigError(
                f"the vLLM KV cache is set to {explicit_bytes / GiB:.2f} GiB, but only "
                f"{_gib(free_bytes)} GiB of memory is free after the model's weights; lower "
                f"{_KV_SETTING} or VLLM_CPU_KVCACHE_SPACE, or free memory"
            )
        return explicit_bytes
    if need.one_sequence_bytes > FREE_SHARE * free_bytes:
        raise ConfigError(
            f"one sequence of {need.max_model_len} tokens needs "
            f"{_gib(need.one_sequence_bytes)} GiB of KV cache, more than half the "
            f"{_gib(free_bytes)} GiB of memory free after the model's weights; lower --n-ctx, "
            f"or free memory, or set {_KV_SETTING}"
        )
    return min(need.wanted_bytes, int(FREE_SHARE * free_bytes))


def _gib(size: int) -> str:
    return f"{max(size, 0) / GiB:.2f}"
