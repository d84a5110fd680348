"""API keys that `relay-edge serve` asks clients for (`Authorization: Bearer <key>`).

    keys = ApiKeys.from_file(Path("serve-keys.txt"))   # ConfigError when unusable
    keys.accepts("the presented key")                  # True or False, in constant time

The file holds one key per line, optionally labelled `NAME:KEY` (the format `relay-teacher`
reads); blank lines and lines starting with `#` are ignored. Keys are kept as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from edge_client.errors import ConfigError

MIN_KEY_LENGTH = 16


class ApiKeys:
    def __init__(self, digests: frozenset[bytes]) -> None:
        self._digests = digests

    @classmethod
    def from_file(cls, path: Path) -> ApiKeys:
        try:
            text = path.expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the API key file {path}: {exc}; give a readable UTF-8 text file"
            ) from exc
        digests = set()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key = line.partition(":")[2] if ":" in line else line
            if len(key) < MIN_KEY_LENGTH or any(char.isspace() for char in key):
                raise ConfigError(
                    f"{path} line {number}: a key must be at least {MIN_KEY_LENGTH} characters "
                    "without spaces; generate one with e.g. `openssl rand -hex 32`"
                )
            digests.add(_digest(key))
        if not digests:
            raise ConfigError(f"the API key file {path} holds no key; add one per line")
        return cls(frozenset(digests))

    def accepts(self, presented: str) -> bool:
        """Compares with every key, so the time taken says nothing about which came close."""
        digest = _digest(presented)
        found = False
        for stored in self._digests:
            found |= hmac.compare_digest(stored, digest)
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()
