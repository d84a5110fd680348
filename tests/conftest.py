"""Fixtures for both sides: test certificates, made at test time with openssl (no key is ever
committed), and free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# grpcio 1.80 and later: with gRPC's fork handlers on, a child started by subprocess while
# channels are active can abort before it execs ("epoll_wait ... Bad file descriptor";
# grpc/grpc#43055); the suite starts teachers and clients as subprocesses beside live channels.
# Its processes never use gRPC across a fork, so the handlers are turned off before grpc loads.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

_PRELOAD_AT_START = os.environ.get("LD_PRELOAD")


@pytest.fixture(autouse=True)
def _preload_as_found() -> Iterator[None]:
    """vLLM's CPU platform adds torch's libgomp (and its tcmalloc) to LD_PRELOAD in the process
    that configures an engine, for the engine's child: here, the test process. Left there, every
    later child of the suite would load that libgomp before any of its own code runs, so a
    llama.cpp process could no longer set its OpenMP spin count (relay_common.llama_import)."""
    yield
    if _PRELOAD_AT_START is None:
        os.environ.pop("LD_PRELOAD", None)
    else:
        os.environ["LD_PRELOAD"] = _PRELOAD_AT_START


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed,
    plus an unrelated CA that trusts neither."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    return cert, key


def _signed(folder: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
        cwd=folder,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca(folder, "test-ca")
    other_ca, _ = _ca(folder, "other-ca")
    server = _signed(
        folder,
        "server",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _signed(folder, "client", ca, "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=ca[0],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        other_ca=other_ca,
    )


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Finds a loopback port nothing listens on (bound, then released)."""

    def find() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    return find
