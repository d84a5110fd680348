"""docs/integration.md's fingerprint recipe, followed without llama.cpp: sha256 over the
GGUF's `tokenizer.ggml.tokens` strings in id order, each followed by a NUL byte, gives the
fingerprint the teacher announces in GetInfo."""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from relay_common.embedded import gemma3_path
from relay_proto import relay_pb2

# GGUF metadata value types (the GGUF spec): scalar sizes and struct formats; 8 string, 9 array.
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


def _read(file: BinaryIO, fmt: str):
    return struct.unpack("<" + fmt, file.read(struct.calcsize("<" + fmt)))[0]


def _value(file: BinaryIO, kind: int):
    if kind == _STRING:
        return file.read(_read(file, "Q"))
    if kind == _ARRAY:
        element_kind, count = _read(file, "I"), _read(file, "Q")
        return [_value(file, element_kind) for _ in range(count)]
    return _read(file, _SCALARS[kind])


def gguf_vocabulary(path) -> list[bytes]:
    """The `tokenizer.ggml.tokens` array of a GGUF file's metadata."""
    with open(path, "rb") as file:
        assert file.read(4) == b"GGUF"
        _version, _tensors, entries = _read(file, "I"), _read(file, "Q"), _read(file, "Q")
        for _ in range(entries):
            key = _value(file, _STRING)
            value = _value(file, _read(file, "I"))
            if key == b"tokenizer.ggml.tokens":
                return value
    raise AssertionError(f"{path} has no tokenizer.ggml.tokens")


def test_the_documented_recipe_gives_the_teachers_fingerprint(teacher_stub):
    digest = hashlib.sha256()
    for token_text in gguf_vocabulary(gemma3_path()):
        digest.update(token_text + b"\0")
    info = teacher_stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=30)
    assert f"sha256:{digest.hexdigest()}" == info.tokenizer_fingerprint
