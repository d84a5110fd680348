"""TLS files checked with Python's ssl module when they are given, not found wrong by gRPC at
its first bind or connection: a key of another certificate, an encrypted key, a CA file that
holds no certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from relay_common.errors import TlsFileError
from relay_common.tls import check_ca_bundle, check_key_pair


def test_a_certificate_and_its_key_pass(pki) -> None:
    check_key_pair(pki.server_cert, pki.server_key)
    check_ca_bundle(pki.ca, what="--tls-ca")


def test_a_key_of_another_certificate_is_named_as_such(pki) -> None:
    with pytest.raises(TlsFileError) as raised:
        check_key_pair(pki.server_cert, pki.client_key)
    message = str(raised.value)
    assert "does not belong to the certificate" in message
    assert str(pki.client_key) in message and str(pki.server_cert) in message


def test_an_encrypted_key_says_to_decrypt_it(pki, tmp_path: Path) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(pki.server_key), "-aes256", "-passout", "pass:secret",
         "-out", str(encrypted)],
        check=True, capture_output=True,
    )  # fmt: skip
    with pytest.raises(TlsFileError, match="encrypted with a passphrase"):
        check_key_pair(pki.server_cert, encrypted)


def test_files_swapped_are_refused(pki) -> None:
    with pytest.raises(TlsFileError, match="cannot load --tls-cert"):
        check_key_pair(pki.server_key, pki.server_cert)


def test_a_key_is_no_ca_bundle(pki) -> None:
    with pytest.raises(TlsFileError, match=r"--tls-ca .* holds no certificate to trust"):
        check_ca_bundle(pki.server_key, what="--tls-ca")
