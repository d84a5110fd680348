"""API keys: who is calling. The key file's format and the constant-time check are
`relay_common.api_keys`'; this module gives each key a caller and a tenant.

    keyring = KeyRing.from_file(Path("keys.txt"))       # ConfigError when the file is unusable
    caller = keyring.authenticate("the presented key")  # Caller, or None for an unknown key
    keyring.reload()                                    # on SIGHUP; keeps the old keys on error

A caller's tenant is derived from its key's digest, not from its label, so renaming a key
keeps its sessions, and a reload that keeps a key keeps its tenant.
"""

from __future__ import annotations

import hashlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from cloud_teacher.errors import ConfigError
from relay_common.api_keys import StoredKey, find_key, read_key_file
from relay_common.errors import KeyFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call comes from. `tenant` scopes sessions, replays and KV prefixes."""

    tenant: str  # "" when the teacher has no keys
    name: str  # the key's label, or the start of its tenant id; "" without keys


ANONYMOUS = Caller(tenant="", name="")

# The caller of the call being served; set by the caller interceptor, read by the servicer.
current_caller: ContextVar[Caller] = ContextVar("current_caller", default=ANONYMOUS)


class KeyRing:
    """The keys the teacher accepts, read from a file and re-read on demand."""

    def __init__(self, path: Path, keys: tuple[StoredKey, ...]) -> None:
        self.path = path
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        return cls(path, _read_keys(path))

    def __len__(self) -> int:
        return len(self._keys)

    def reload(self) -> None:
        """Re-reads the file; on an error the keys stay as they were and it is logged."""
        try:
            self._keys = _read_keys(self.path)
        except ConfigError as exc:
            log.error("API keys not reloaded, the previous %d stay valid: %s", len(self), exc)
            return
        log.info("API keys reloaded from %s: %d keys", self.path, len(self._keys))

    def authenticate(self, presented: str) -> Caller | None:
        """The caller owning `presented`, or None (compared in constant time)."""
        found = find_key(self._keys, presented)
        if found is None:
            return None
        tenant = hashlib.sha256(b"relay-tenant\0" + found.digest).hexdigest()[:32]
        return Caller(tenant=tenant, name=found.label or tenant[:8])


def _read_keys(path: Path) -> tuple[StoredKey, ...]:
    try:
        return read_key_file(path)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from exc
