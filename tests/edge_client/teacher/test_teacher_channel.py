"""The edge reaches a teacher that needs TLS and an API key: a real `relay-teacher` process
(SmolLM2) serving TLS on loopback with a key file, and certificates made at test time."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_client.errors import ConfigError, TeacherRejectedError, TeacherUnavailableError
from edge_client.settings import channel_security, load_settings
from edge_client.teacher.channel import ChannelSecurity, open_channel
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.embedded import smollm2_path

KEY = "edge-test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def tls_teacher(pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`relay-teacher serve` with TLS and one API key; yields HOST:PORT."""
    folder = tmp_path_factory.mktemp("tls-teacher")
    keys, ready = folder / "keys.txt", folder / "ready"
    keys.write_text(f"edge:{KEY}\n")
    command = [
        sys.executable, "-c", "from cloud_teacher.cli import main; main()", "serve",
        "--port", "0", "--ready-file", str(ready), "--model", str(smollm2_path()),
        "--slots", "1", "--n-ctx", "512", "--max-span-tokens", "16",
        "--api-key-file", str(keys), "--tls-cert", str(pki.server_cert),
        "--tls-key", str(pki.server_key),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the teacher did not start"
            time.sleep(0.1)
        yield ready.read_text()
    finally:
        process.terminate()
        process.communicate(timeout=60)


def client(address: str, security: ChannelSecurity) -> GrpcTeacherClient:
    fast = TeacherClientSettings(deadline_s=20, attempts=1, latency_budget_s=30)
    return GrpcTeacherClient(address, settings=fast, security=security)


def test_the_edge_reaches_a_tls_teacher_with_its_ca_and_key(
    tls_teacher: str, pki, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(f"# the teacher's key\n{KEY}\n")
    settings = load_settings(teacher=tls_teacher, tls_ca=pki.ca, api_key_file=key_file)
    teacher = client(tls_teacher, channel_security(settings))
    try:
        assert teacher.info().max_span_tokens == 16
    finally:
        teacher.close()


def test_the_key_can_come_from_relay_api_key(tls_teacher: str, pki, monkeypatch) -> None:
    monkeypatch.setenv("RELAY_API_KEY", KEY)
    settings = load_settings(teacher=tls_teacher, tls_ca=pki.ca)
    teacher = client(tls_teacher, channel_security(settings))
    try:
        assert teacher.info().max_span_tokens == 16
    finally:
        teacher.close()


def test_without_the_key_the_teacher_refuses_and_says_so(tls_teacher: str, pki) -> None:
    teacher = client(tls_teacher, ChannelSecurity.from_files(tls_ca=pki.ca))
    try:
        with pytest.raises(TeacherRejectedError, match=r"UNAUTHENTICATED.*API key"):
            teacher.info()
    finally:
        teacher.close()


def test_with_another_ca_the_teacher_is_unreachable(tls_teacher: str, pki) -> None:
    security = ChannelSecurity.from_files(tls_ca=pki.other_ca, api_key=KEY)
    teacher = client(tls_teacher, security)
    try:
        with pytest.raises(TeacherUnavailableError):
            teacher.info()
    finally:
        teacher.close()


def test_a_key_over_plaintext_to_another_host_gets_one_warning(caplog) -> None:
    caplog.set_level(logging.WARNING)
    open_channel("127.0.0.1:50051", ChannelSecurity(api_key=KEY)).close()
    assert not caplog.records
    open_channel("teacher.example.com:50051", ChannelSecurity(api_key=KEY)).close()
    open_channel("teacher.example.com:50051", ChannelSecurity(tls=True, api_key=KEY)).close()
    assert len(caplog.records) == 1
    assert "without TLS" in caplog.records[0].getMessage()
    assert KEY not in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tls_cert": "cert.pem"}, "go together"),
        ({"tls_ca": "missing.pem"}, "cannot read --tls-ca"),
        ({"tls_ca": "not-pem.txt"}, "not a PEM file"),
        ({"api_key_file": "two-keys.txt"}, "exactly one key"),
    ],
)
def test_bad_security_files_are_one_clear_error(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    (tmp_path / "not-pem.txt").write_text("hello")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "two-keys.txt").write_text("a" * 20 + "\n" + "b" * 20 + "\n")
    with pytest.raises(ConfigError, match=expected):
        ChannelSecurity.from_files(**{name: tmp_path / path for name, path in files.items()})


def test_a_client_key_of_another_certificate_is_one_clear_error(pki) -> None:
    # gRPC would fail every connection instead, and the teacher would look offline.
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        ChannelSecurity.from_files(tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.server_key)


def test_a_ca_file_without_a_certificate_is_one_clear_error(pki) -> None:
    with pytest.raises(ConfigError, match=r"--tls-ca .* holds no certificate to trust"):
        ChannelSecurity.from_files(tls_ca=pki.client_key)
