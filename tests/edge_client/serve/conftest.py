"""`relay-edge serve` as a user runs it: a real process on a free loopback port, its own
ledger file, the embedded student; stopped with SIGTERM (and checked to exit 0)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge_client.ledger.store import Ledger

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
_URL_LINE = re.compile(r"relay-edge serve on (http://\S+)/ ")
_START_TIMEOUT_S = 240.0  # the student loads (and a local teacher starts) on a busy machine


@dataclass
class Served:
    url: str  # "http://127.0.0.1:PORT"
    model: str
    ledger_path: Path
    process: subprocess.Popen[bytes]
    log: Path

    def ledger(self) -> Ledger:
        return Ledger(self.ledger_path)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, *, timeout_s: float = 120.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def serve_env(home: Path) -> dict[str, str]:
    """A hermetic environment: no user config, a ledger of its own, a patient teacher client
    (a busy 2-core machine is slow; a late call would fall back)."""
    config = home / "config.toml"
    config.write_text("[teacher_client]\ndeadline_s = 300.0\nlatency_budget_s = 600.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return env | {"RELAY_LEDGER_PATH": str(home / "ledger.db"), "RELAY_CONFIG": str(config)}


def start_serve(home: Path, *args: str) -> Served:
    """Starts `relay-edge serve --port 0 ARGS` and waits until it serves."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [RELAY_EDGE, "serve", "--port", "0", *args],
            env=serve_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while (found := _URL_LINE.search(log.read_text(errors="replace"))) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"relay-edge serve did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    url = found.group(1)
    model = httpx.get(f"{url}/health", timeout=30).json()["model"]
    return Served(url=url, model=model, ledger_path=home / "ledger.db", process=process, log=log)


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Served]]:
    """Starts servers for the module; each is stopped with SIGTERM at the end, and must
    exit 0."""
    started: list[Served] = []

    def start(*args: str) -> Served:
        served = start_serve(tmp_path_factory.mktemp("serve-home"), *args)
        started.append(served)
        return served

    yield start
    for served in started:
        assert served.stop() == 0, served.output()
