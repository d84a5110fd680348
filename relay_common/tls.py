"""What both sides need to set up TLS and judge an address: PEM files, loopback hosts.

certificate = read_pem(path, what="--tls-cert")    # bytes; TlsFileError when unusable
is_loopback_host("127.0.0.1")                      # True: traffic stays on this machine
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from relay_common.errors import TlsFileError


def read_pem(path: Path, *, what: str) -> bytes:
    """The PEM file's bytes; `TlsFileError` naming `what` when it cannot be read or is not PEM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if b"-----BEGIN " not in data:
        raise TlsFileError(f"{what} {path} is not a PEM file; give a PEM certificate or key")
    return data


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (brackets allowed); False for other names,
    which may resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
