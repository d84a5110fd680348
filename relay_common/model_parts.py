"""GGUF files shipped in numbered parts across PyPI packages (PyPI caps a file's size).

Each part package holds `data/partNN.bin`; joined in numeric order they are the GGUF. The
file is assembled once into the user's cache directory, checked against its pinned size and
SHA-256 while it is written, and moved into place only when it matches, so a file found there
is whole and was checked.

    spec = PartedModel(file_name="m.gguf", packages=("m_part1", "m_part2"), size=..., sha256=...)
    path = assemble(spec, install_hint="pip install 'relay-decoding[extra]'")
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from relay_common.errors import ModelNotFoundError

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PartedModel:
    file_name: str  # name of the assembled GGUF in the cache
    packages: tuple[str, ...]  # importable names of the part packages, in order
    size: int  # bytes of the assembled file
    sha256: str


def cache_dir() -> Path:
    """Where assembled models live; RELAY_MODEL_CACHE overrides the user's cache directory."""
    override = os.environ.get("RELAY_MODEL_CACHE")
    return Path(override) if override else Path(platformdirs.user_cache_dir("relay-decoding"))


def assemble(model: PartedModel, *, install_hint: str) -> Path:
    """The assembled GGUF of `model`, joined and checked on first use.

    Raises ModelNotFoundError when a part package is missing (with `install_hint`) or the
    joined file does not match the pinned size or SHA-256.
    """
    target = cache_dir() / model.file_name
    if target.is_file() and target.stat().st_size == model.size:
        return target
    parts = [_part_files(package, install_hint=install_hint) for package in model.packages]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as out:
        try:
            for files in parts:
                for part in files:
                    with part.open("rb") as source:
                        while chunk := source.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            written += len(chunk)
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    if written != model.size or digest.hexdigest() != model.sha256:
        Path(out.name).unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"{model.file_name} assembled from {model.packages[0]}… is {written} bytes with "
            f"sha256 {digest.hexdigest()}, not the pinned {model.size} bytes and "
            f"{model.sha256}; reinstall the packages ({install_hint})"
        )
    os.replace(out.name, target)
    return target


def _part_files(package: str, *, install_hint: str) -> list[Path]:
    """The `data/partNN.bin` files of one part package, in numeric order (not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the model package {package} is not installed; {install_hint}")
    for location in spec.submodule_search_locations:
        found = list((Path(location) / "data").glob("part*.bin"))
        if found:
            return sorted(found, key=lambda path: int(path.stem.removeprefix("part")))
    raise ModelNotFoundError(f"package {package} holds no data/part*.bin file; {install_hint}")
