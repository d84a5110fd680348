"""The gRPC channel to a teacher: plaintext or TLS (optionally with a client certificate), and the
API key sent as `authorization: Bearer <key>` on every call.

    security = ChannelSecurity.from_files(tls_ca=Path("ca.pem"), api_key="...")
    channel = open_channel("teacher.example.com:50051", security, options=options)

A key about to go over plaintext to a host that is not this machine gets a one-line warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from edge_client.errors import ConfigError
from relay_common.errors import TlsFileError
from relay_common.tls import check_ca_bundle, check_key_pair, is_loopback_host, read_pem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    """How to reach the teacher. The default is plaintext without a key (a local teacher)."""

    tls: bool = False
    root_certificates: bytes | None = None  # PEM; None: the system's roots
    client_certificate: bytes | None = None  # PEM chain, for mutual TLS
    client_key: bytes | None = None  # PEM
    api_key: str | None = None

    @classmethod
    def from_files(
        cls,
        *,
        tls: bool = False,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        api_key: str | None = None,
        api_key_file: Path | None = None,
    ) -> ChannelSecurity:
        """Reads the PEM and key files; `ConfigError` naming the file that cannot be used."""
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together; give both or neither")
        if api_key_file is not None:
            api_key = _read_api_key(api_key_file)
        if api_key is not None and (not api_key or any(char.isspace() for char in api_key)):
            raise ConfigError("the API key is empty or has spaces; give the key exactly")
        security = cls(
            tls=tls or tls_ca is not None or tls_cert is not None,
            root_certificates=_read_pem(tls_ca, "--tls-ca"),
            client_certificate=_read_pem(tls_cert, "--tls-cert"),
            client_key=_read_pem(tls_key, "--tls-key"),
            api_key=api_key,
        )
        try:
            # gRPC would only fail every connection (the teacher would look offline).
            if tls_cert is not None and tls_key is not None:
                check_key_pair(tls_cert, tls_key)
            if tls_ca is not None:
                check_ca_bundle(tls_ca, what="--tls-ca")
        except TlsFileError as exc:
            raise ConfigError(str(exc)) from exc
        return security


def open_channel(
    address: str, security: ChannelSecurity, *, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    if security.tls:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=security.root_certificates,
            private_key=security.client_key,
            certificate_chain=security.client_certificate,
        )
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
        if security.api_key is not None and not is_loopback_host(address.rpartition(":")[0]):
            log.warning(
                "warning: sending the API key to %s without TLS, readable on the network; "
                "use --tls or --tls-ca",
                address,
            )
    if security.api_key is None:
        return channel
    return grpc.intercept_channel(channel, _BearerKey(security.api_key))


class _BearerKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to every call's metadata."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._with_key(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._with_key(client_call_details), request)

    def _with_key(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
            compression=details.compression,
        )


class _CallDetails(
    NamedTuple(
        "_CallDetails",
        [
            ("method", str),
            ("timeout", "float | None"),
            ("metadata", "Sequence[tuple[str, str]] | None"),
            ("credentials", "grpc.CallCredentials | None"),
            ("wait_for_ready", "bool | None"),
            ("compression", "grpc.Compression | None"),
        ],
    ),
    grpc.ClientCallDetails,
):
    """The call's details with the key added (gRPC's documented way: a named tuple)."""


def _read_api_key(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API key file {path}: {exc}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if len(keys) != 1:
        raise ConfigError(
            f"the API key file {path} must hold exactly one key (found {len(keys)}); "
            "put the key alone on one line"
        )
    return keys[0]


def _read_pem(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return read_pem(path, what=flag)
    except TlsFileError as exc:
        raise ConfigError(str(exc)) from exc
