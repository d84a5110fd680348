"""API keys that `relay-edge serve` asks clients for (`Authorization: Bearer <key>`), from a
file in the format `relay-teacher` reads (`relay_common.api_keys`).

    keys = ApiKeys.from_file(Path("serve-keys.txt"))   # ConfigError when unusable
    keys.accepts("the presented key")                  # True or False, in constant time
"""

from __future__ import annotations

from pathlib import Path

from edge_client.errors import ConfigError
from relay_common.api_keys import StoredKey, find_key, read_key_file
from relay_common.errors import KeyFileError


class ApiKeys:
    def __init__(self, keys: tuple[StoredKey, ...]) -> None:
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> ApiKeys:
        try:
            return cls(read_key_file(path))
        except KeyFileError as exc:
            raise ConfigError(str(exc)) from exc

    def accepts(self, presented: str) -> bool:
        return find_key(self._keys, presented) is not None
