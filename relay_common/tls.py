"""What both sides need to set up TLS and judge an address: PEM files, loopback hosts.

certificate = read_pem(path, what="--tls-cert")    # bytes; TlsFileError when unusable
check_key_pair(cert_path, key_path)                # TlsFileError: the key is not the cert's
check_ca_bundle(path, what="--tls-ca")             # TlsFileError: no certificate in it
is_loopback_host("127.0.0.1")                      # True: traffic stays on this machine

gRPC takes certificates and keys as bytes and finds out what is wrong with them only when it
binds a port or makes a connection, where its error names neither file (a key that does not
match its certificate reads as a port already in use). Python's `ssl` module loads the same PEM
files with the same OpenSSL checks, so they are checked with it first, when the files are given.
"""

from __future__ import annotations

import ipaddress
import ssl
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


def check_key_pair(
    cert: Path, key: Path, *, cert_flag: str = "--tls-cert", key_flag: str = "--tls-key"
) -> None:
    """Raises `TlsFileError` unless `cert` holds a certificate (chain) and `key` its private key,
    unencrypted (gRPC takes no passphrase)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_refuse_passphrase)
    except _EncryptedKeyError:
        raise TlsFileError(
            f"{key_flag} {key} is encrypted with a passphrase, which gRPC cannot take; give the "
            f"key unencrypted (e.g. openssl pkey -in {key} -out plain.key)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(
                f"the key {key} ({key_flag}) does not belong to the certificate {cert} "
                f"({cert_flag}); give the private key the certificate was made for"
            ) from exc
        raise TlsFileError(
            f"cannot load {cert_flag} {cert} and {key_flag} {key} as a certificate and its key "
            f"({exc.reason or exc}); give a PEM certificate chain and its PEM private key"
        ) from exc
    except OSError as exc:
        raise TlsFileError(f"cannot read {cert_flag} {cert} or {key_flag} {key}: {exc}") from exc


def check_ca_bundle(path: Path, *, what: str) -> None:
    """Raises `TlsFileError` unless `path` holds at least one PEM certificate to trust."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsFileError(
            f"{what} {path} holds no certificate to trust ({exc.reason or exc}); give the PEM "
            "certificate of the certificate authority (a key is no CA bundle)"
        ) from exc
    except OSError as exc:
        raise TlsFileError(f"cannot read {what} {path}: {exc.strerror}") from exc


class _EncryptedKeyError(Exception):
    """Raised from OpenSSL's passphrase callback: the key asks for a passphrase."""


def _refuse_passphrase() -> str:
    raise _EncryptedKeyError


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (brackets allowed); False for other names,
    which may resolve anywhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
