"""API key files, read one way by both servers: the teacher (the keys its gRPC callers present)
and `relay-edge serve` (the keys its HTTP clients present). Keys are kept only as SHA-256
digests and compared in constant time.

    keys = read_key_file(Path("keys.txt"))   # StoredKey per line; KeyFileError when unusable
    found = find_key(keys, "presented key")  # the StoredKey, or None

The file holds one key per line, optionally labelled `NAME:KEY` (the label names the key in
logs and usage); blank lines and lines starting with `#` are ignored:

    # keys.txt
    mobile-app:3f6c0f1e9b2a4d7c8e5f1a2b3c4d5e6f
    0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from relay_common.echo import quoted
from relay_common.errors import KeyFileError

MIN_KEY_LENGTH = 16
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class StoredKey:
    label: str  # "" when the line has none
    digest: bytes  # SHA-256 of the key


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def read_key_file(path: Path) -> tuple[StoredKey, ...]:
    """The file's keys, each once; `KeyFileError` naming the line that is wrong."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"cannot read the API key file {path}: {exc}; give a readable UTF-8 text file"
        ) from exc
    keys: dict[bytes, StoredKey] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        label, _, key = line.partition(":") if ":" in line else ("", "", line)
        if label and not _LABEL.fullmatch(label):
            raise KeyFileError(
                f"{path} line {number}: the label {quoted(label)} is not 1 to 64 letters, digits, "
                "'_', '.' or '-'; write NAME:KEY or just KEY"
            )
        if len(key) < MIN_KEY_LENGTH or any(char.isspace() for char in key):
            raise KeyFileError(
                f"{path} line {number}: a key must be at least {MIN_KEY_LENGTH} characters "
                "without spaces; generate one with e.g. `openssl rand -hex 32`"
            )
        digest = key_digest(key)
        keys[digest] = StoredKey(label=label, digest=digest)
    if not keys:
        raise KeyFileError(
            f"the API key file {path} holds no keys; add one per line (NAME:KEY or KEY)"
        )
    return tuple(keys.values())


def find_key(keys: Sequence[StoredKey], presented: str) -> StoredKey | None:
    """The stored key equal to `presented`, or None. Every key is compared, in constant time,
    so the time taken says nothing about which key came close."""
    digest = key_digest(presented)
    found: StoredKey | None = None
    for stored in keys:
        if hmac.compare_digest(stored.digest, digest):
            found = stored
    return found
