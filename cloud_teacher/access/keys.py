"""API keys: who is calling. Keys are kept only as SHA-256 digests and compared in constant time.

    keyring = KeyRing.from_file(Path("keys.txt"))       # ConfigError when the file is unusable
    caller = keyring.authenticate("the presented key")  # Caller, or None for an unknown key
    keyring.reload()                                    # on SIGHUP; keeps the old keys on error

The file holds one key per line, optionally labelled `NAME:KEY` (the label names the key in
logs and usage); blank lines and lines starting with `#` are ignored:

    # keys.txt
    mobile-app:3f6c0f1e9b2a4d7c8e5f1a2b3c4d5e6f
    0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f

A caller's tenant is derived from its key's digest, not from its label, so renaming a key
keeps its sessions, and a reload that keeps a key keeps its tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from cloud_teacher.errors import ConfigError
from relay_common.echo import quoted

log = logging.getLogger(__name__)

MIN_KEY_LENGTH = 16
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call comes from. `tenant` scopes sessions, replays and KV prefixes."""

    tenant: str  # "" when the teacher has no keys
    name: str  # the key's label, or the start of its tenant id; "" without keys


ANONYMOUS = Caller(tenant="", name="")

# The caller of the call being served; set by the caller interceptor, read by the servicer.
current_caller: ContextVar[Caller] = ContextVar("current_caller", default=ANONYMOUS)


@dataclass(frozen=True, slots=True)
class _StoredKey:
    digest: bytes
    caller: Caller


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """The keys the teacher accepts, read from a file and re-read on demand."""

    def __init__(self, path: Path, keys: tuple[_StoredKey, ...]) -> None:
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
        """The caller owning `presented`, or None. Every stored key is compared, in constant
        time, so the time taken says nothing about which key came close."""
        digest = _digest(presented)
        found: Caller | None = None
        for stored in self._keys:
            if hmac.compare_digest(stored.digest, digest):
                found = stored.caller
        return found


def _read_keys(path: Path) -> tuple[_StoredKey, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the API key file {path}: {exc}; give a readable UTF-8 text file"
        ) from exc
    keys: dict[bytes, _StoredKey] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        label, _, key = line.partition(":") if ":" in line else ("", "", line)
        if label and not _LABEL.fullmatch(label):
            raise ConfigError(
                f"{path} line {number}: the label {quoted(label)} is not 1 to 64 letters, digits, "
                "'_', '.' or '-'; write NAME:KEY or just KEY"
            )
        if len(key) < MIN_KEY_LENGTH or any(char.isspace() for char in key):
            raise ConfigError(
                f"{path} line {number}: a key must be at least {MIN_KEY_LENGTH} characters "
                "without spaces; generate one with e.g. `openssl rand -hex 32`"
            )
        digest = _digest(key)
        tenant = hashlib.sha256(b"relay-tenant\0" + digest).hexdigest()[:32]
        keys[digest] = _StoredKey(digest, Caller(tenant=tenant, name=label or tenant[:8]))
    if not keys:
        raise ConfigError(
            f"the API key file {path} holds no keys; add one per line (NAME:KEY or KEY)"
        )
    return tuple(keys.values())
