"""The gRPC server: relay.v1, health checking and reflection, and its life from start to drain.

    server, port = create_server(settings, engine)   # inside the event loop that runs it
    await server.start()                             # health: SERVING
    await server.stop(grace=10)                      # NOT_SERVING, drain, stop

`serve(settings)` is the whole life of `relay-teacher serve`; SIGHUP re-reads the API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cloud_teacher.access.keys import KeyRing
from cloud_teacher.access.quota import CallerLimits
from cloud_teacher.engines.base import Engine
from cloud_teacher.engines.registry import create_engine
from cloud_teacher.errors import ConfigError
from cloud_teacher.metrics.collectors import MetricsEndpoint, TeacherMetrics
from cloud_teacher.metrics.interceptor import CALL_LABELS, MetricsInterceptor
from cloud_teacher.rpc.interceptors import CallerInterceptor, ErrorStatusInterceptor
from cloud_teacher.rpc.service import TeacherServicer
from cloud_teacher.sessions import ReplayWindow, SessionBook
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.teacher import Teacher
from relay_common.errors import TlsFileError
from relay_common.tls import check_ca_bundle, check_key_pair, is_loopback_host, read_pem
from relay_proto import relay_pb2, relay_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = relay_pb2.DESCRIPTOR.services_by_name["TeacherService"].full_name
_HEALTH_SERVICES = ("", SERVICE_NAME)  # "" is the whole server


class TeacherServer:
    """A relay.v1 server; `stop(grace)` reports NOT_SERVING, then lets calls in flight end.

    `metrics_port` is the bound port of its /metrics endpoint, None without one.
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        health_servicer: health.aio.HealthServicer,
        metrics: TeacherMetrics | None,
    ) -> None:
        self._server = server
        self._health = health_servicer
        self._metrics = metrics
        self._metrics_endpoint: MetricsEndpoint | None = None

    @property
    def metrics_port(self) -> int | None:
        return None if self._metrics_endpoint is None else self._metrics_endpoint.port

    def serve_metrics(self, *, host: str, port: int) -> None:
        """Starts /metrics on `host`:`port` (0: a free port); `ConfigError` if it cannot."""
        if self._metrics is not None:
            self._metrics_endpoint = self._metrics.serve(host=host, port=port)

    async def start(self) -> None:
        await self._server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in _HEALTH_SERVICES:
            await self._health.set(service, status)

    async def stop(self, grace: float | None) -> None:
        """Refuses new calls, waits up to `grace` seconds for those in flight, cancels the rest."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
        if self._metrics_endpoint is not None:
            self._metrics_endpoint.close()


def create_server(
    settings: TeacherSettings, engine: Engine, *, keys: KeyRing | None = None
) -> tuple[TeacherServer, int]:
    """A server for `engine`, bound to `settings.host`:`settings.port` (0: a free port).

    `keys` are the accepted API keys (default: read from `settings.api_key_file`, if set).
    Returns it with the port it bound; `ConfigError` when an address or a file cannot be used.
    With `settings.metrics_port` set, it also serves /metrics there.
    """
    if keys is None and settings.api_key_file is not None:
        keys = KeyRing.from_file(settings.api_key_file)
    credentials = _server_credentials(settings)
    limits = CallerLimits(
        tokens_per_minute=settings.key_tokens_per_minute, max_calls=settings.max_calls_per_key
    )
    book = SessionBook(
        ReplayWindow(
            per_session=settings.replay_per_session,
            seconds=settings.replay_seconds,
            max_bytes=settings.replay_max_bytes,
        ),
        max_sessions=settings.max_sessions,
    )
    metrics = (
        None
        if settings.metrics_port is None
        else TeacherMetrics(
            sessions_held=lambda: book.sessions_held, call_labels=tuple(CALL_LABELS)
        )
    )
    observer = None if metrics is None else MetricsInterceptor(metrics)
    server = grpc.aio.server(
        # The first is the outermost: errors raised inside get their status code there, and the
        # metrics (innermost) know the caller's key and see domain errors before they become
        # statuses; the caller checks tell them of the calls they refuse.
        interceptors=[
            ErrorStatusInterceptor(),
            CallerInterceptor(
                keys, limits, on_refused=None if observer is None else observer.count_refusal
            ),
            *([] if observer is None else [observer]),
        ],
        options=[
            # Without this a second teacher on the same port binds too and shares its calls.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    teacher_server = TeacherServer(server, health_servicer, metrics)

    async def engine_died() -> None:
        log.error("the engine died; health is NOT_SERVING until the teacher is restarted")
        await teacher_server.set_serving(False)

    teacher = Teacher(
        engine,
        limits=settings.limits,
        book=book,
        max_pending=settings.max_pending,
        on_engine_dead=engine_died,
        before_generating=lambda request: limits.check_quota(request.tenant),
    )
    published = relay_pb2.Limits(
        max_span_tokens=settings.limits.max_span_tokens,
        max_context_tokens=settings.limits.max_context_tokens,
        max_message_bytes=settings.max_message_bytes,
        max_calls_per_key=settings.max_calls_per_key or 0,
        key_tokens_per_minute=settings.key_tokens_per_minute or 0,
    )
    relay_pb2_grpc.add_TeacherServiceServicer_to_server(
        TeacherServicer(teacher, limits=published), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = format_address(settings.host, settings.port)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpc raises on a failed bind
        raise ConfigError(
            f"cannot listen on {address} (in use, or not an address of this machine); "
            "choose another --port or --host, or stop the process using it"
        ) from exc
    if settings.metrics_port is not None:
        teacher_server.serve_metrics(host=settings.host, port=settings.metrics_port)
    return teacher_server, port


def _server_credentials(settings: TeacherSettings) -> grpc.ServerCredentials | None:
    """TLS (mutual with --tls-client-ca) from the settings' PEM files; None for plaintext,
    which only a loopback address gets unless --allow-insecure says otherwise."""
    if settings.tls_cert is None or settings.tls_key is None:
        if not (is_loopback_host(settings.host) or settings.allow_insecure):
            raise ConfigError(
                f"refusing to serve plaintext on {settings.host}, which is not a loopback "
                "address: API keys and prompts would cross the network in the clear; give "
                "--tls-cert and --tls-key, or --allow-insecure (e.g. behind a TLS proxy)"
            )
        return None
    client_ca = (
        _read_pem(settings.tls_client_ca, "--tls-client-ca") if settings.tls_client_ca else None
    )
    key, cert = _read_pem(settings.tls_key, "--tls-key"), _read_pem(settings.tls_cert, "--tls-cert")
    try:
        # gRPC would say only that it cannot listen, after the model loaded.
        check_key_pair(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            check_ca_bundle(settings.tls_client_ca, what="--tls-client-ca")
    except TlsFileError as exc:
        raise ConfigError(str(exc)) from exc
    return grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _read_pem(path: Path, flag: str) -> bytes:
    try:
        return read_pem(path, what=flag)
    except TlsFileError as exc:
        raise ConfigError(f"{exc}; check the TLS file") from exc


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(settings: TeacherSettings) -> None:
    """Loads the engine, serves until SIGTERM or SIGINT, drains within the grace period."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Read before the model loads: a bad key or TLS file should not cost a start-up.
    _server_credentials(settings)
    keys = KeyRing.from_file(settings.api_key_file) if settings.api_key_file else None
    if keys is not None:
        loop.add_signal_handler(signal.SIGHUP, keys.reload)
    # In a thread, so a signal during a long model load is still noticed.
    engine = await asyncio.to_thread(create_engine, settings)
    try:
        server, port = create_server(settings, engine, keys=keys)
        await server.start()
        address = format_address(settings.host, port)
        log.info("serving relay.v1 on %s", address)
        if server.metrics_port is not None:
            log.info(
                "metrics at http://%s/metrics", format_address(settings.host, server.metrics_port)
            )
        try:
            if settings.ready_file is not None:
                _write_atomically(settings.ready_file, address)
            await stop.wait()
            log.info("draining: spans in flight get %.3g s to finish", settings.grace_seconds)
        finally:
            await server.stop(settings.grace_seconds)
            if settings.ready_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    settings.ready_file.unlink()
    finally:
        await engine.close()
    log.info("stopped")


def _write_atomically(path: Path, text: str) -> None:
    """Readers see no file or the whole text, never a partial one."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the ready file {path}: {exc.strerror}") from exc
