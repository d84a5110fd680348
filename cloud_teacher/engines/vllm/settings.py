"""Settings of the vLLM engine: the `[vllm]` table of the teacher's settings.

    # teacher.toml                          # or RELAY_TEACHER_VLLM__DTYPE=bfloat16
    engine = "vllm"
    model = "/models/Qwen3-8B"              # a directory of HF files: nothing is downloaded
    [vllm]
    dtype = "bfloat16"
    chat_template_kwargs = { enable_thinking = false }

The context window is the teacher's `n_ctx` (vLLM's `max_model_len`), as for every engine.
No vLLM import here: the settings load and validate without the extra installed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CPU_BLOCK_SIZE = 32


class VllmSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights and activations type; auto: the model's own (bfloat16)."
    )
    gpu_memory_utilization: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Share of the GPU's memory vLLM may use (weights, activations, KV cache). "
        "GPU only: on a CPU vLLM would reserve this share of all RAM, so the KV cache is sized "
        "from kv_cache_gib instead.",
    )
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs the model is split across.")
    quantization: str | None = Field(
        None, description="vLLM quantization method (awq, gptq, fp8, ...); default: the model's."
    )
    kv_cache_gib: float | None = Field(
        None,
        gt=0,
        description="KV cache size in GiB. Default: on a GPU what gpu_memory_utilization "
        "leaves; on a CPU (else VLLM_CPU_KVCACHE_SPACE) what max_num_seqs sequences of n_ctx "
        "tokens need, at most half the memory free after the weights.",
    )
    block_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Tokens per KV cache block; prefixes are reused in whole blocks. Default: "
        f"{CPU_BLOCK_SIZE} on CPU (vLLM's 128 there would leave up to 127 tokens of every "
        "session's context uncached), vLLM's default on a GPU.",
    )
    max_num_seqs: int = Field(
        64, ge=1, le=4096, description="Spans generated at once in one continuous batch."
    )
    enforce_eager: bool | None = Field(
        None,
        description="Skip torch.compile and CUDA graphs: a faster start, slower generation on a "
        "GPU. Default: on CPU yes (compiling took minutes at start there and gained nothing "
        "measurable on SmolLM2-135M), on a GPU no.",
    )
    chat_template_kwargs: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra variables for the model's chat template in text mode, "
        "e.g. {enable_thinking = false} for Qwen3.",
    )
