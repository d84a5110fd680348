"""`relay-edge serve`: binds the address, loads the student, serves until SIGTERM or Ctrl-C.

    run_server(settings, out=console)   # returns after a clean shutdown (exit status 0)

The address is checked and bound before the slow part, so a port in use or a refused
exposure fails at once. On SIGTERM the server stops taking requests, refuses those waiting
(503), gives the answer in progress `grace_s` to finish, cancels it after that (the ledger
marks it), closes the runtime (and a local teacher) and returns.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
from collections.abc import Iterator
from types import FrameType

import uvicorn
from rich.console import Console

from edge_client.errors import ConfigError
from edge_client.serve.app import create_app
from edge_client.serve.keys import ApiKeys
from edge_client.serve.worker import AnswerWorker
from edge_client.settings import EdgeSettings

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# uvicorn's own wait for open connections: past the answer's grace, time to send its end.
_SHUTDOWN_MARGIN_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server; SIGTERM/SIGINT also drain the worker, and end it with status 0."""

    def __init__(self, config: uvicorn.Config, *, worker: AnswerWorker, grace_s: float) -> None:
        super().__init__(config)
        self._worker = worker
        self._grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._worker.drain(grace_s=self._grace_s)
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's raises the signal again once it has shut down, which kills the process
        # (status -15); here the signal is the normal way to stop, and a clean stop exits 0.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_server(settings: EdgeSettings, *, out: Console) -> None:
    serve = settings.serve
    keys = ApiKeys.from_file(serve.api_key_file) if serve.api_key_file else None
    if keys is None and not serve.allow_insecure and not _is_loopback(serve.host):
        raise ConfigError(
            f"{serve.host} is reachable from other machines and no API keys are set: give "
            "--serve-api-key-file FILE, or --allow-insecure to serve without keys"
        )
    listener = _bind(serve.host, serve.port)
    try:
        with out.status("loading the student and connecting the teacher…"):
            worker = AnswerWorker(settings)
            worker.start()
        try:
            runtime = worker.runtime
            config = uvicorn.Config(
                create_app(worker, settings=settings, keys=keys),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=int(serve.grace_s + _SHUTDOWN_MARGIN_S),
            )
            host, port = listener.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            out.print(
                f"[bold]relay-edge serve[/] on http://{shown}:{port}/ · OpenAI API at "
                f"http://{shown}:{port}/v1 · model {runtime.session.student.model_name} · "
                f"teacher {runtime.teacher_label} ({runtime.mode or 'not reached'} mode) · "
                f"policy {runtime.policy}",
                soft_wrap=True,
            )
            if runtime.notice:
                out.print(runtime.notice, style="yellow")
            out.file.flush()
            _Server(config, worker=worker, grace_s=serve.grace_s).run(sockets=[listener])
        finally:
            worker.close()
    finally:
        listener.close()
    out.print("relay-edge serve: stopped")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        # Connections made while the student loads wait in the backlog, not refused.
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0 picks a free one) or --host"
        ) from exc
    return listener
