"""`relay-teacher`: the command line. It maps flags onto the settings and runs the server;
a known error prints one line and exits non-zero."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cloud_teacher.errors import ConfigError, TeacherError
from cloud_teacher.rpc.server import serve as serve_forever
from cloud_teacher.settings import ENV_PREFIX, TeacherSettings, load_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The relay-decoding cloud teacher: serves teacher spans over gRPC (relay.v1).",
)


def _help(name: str) -> str:
    field = TeacherSettings.model_fields[name]
    default = "" if field.default is None else f"default {field.default}; "
    return f"{field.description} ({default}env {ENV_PREFIX}{name.upper()})"


@app.callback()
def _root() -> None:
    """The relay-decoding cloud teacher: serves teacher spans over gRPC (relay.v1)."""


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML file of settings (keys as below, e.g. port = 50052); "
            f"flags and {ENV_PREFIX}* variables override it. (env {ENV_PREFIX}CONFIG)",
            envvar=f"{ENV_PREFIX}CONFIG",
            show_envvar=False,
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help=_help("host"))] = None,
    port: Annotated[int | None, typer.Option(help=_help("port"))] = None,
    metrics_port: Annotated[int | None, typer.Option(help=_help("metrics_port"))] = None,
    ready_file: Annotated[Path | None, typer.Option(help=_help("ready_file"))] = None,
    engine: Annotated[str | None, typer.Option(help=_help("engine"))] = None,
    model: Annotated[Path | None, typer.Option(help=_help("model"))] = None,
    n_ctx: Annotated[int | None, typer.Option(help=_help("n_ctx"))] = None,
    slots: Annotated[int | None, typer.Option(help=_help("slots"))] = None,
    kv_sessions: Annotated[int | None, typer.Option(help=_help("kv_sessions"))] = None,
    threads: Annotated[int | None, typer.Option(help=_help("threads"))] = None,
    n_ubatch: Annotated[int | None, typer.Option(help=_help("n_ubatch"))] = None,
    exact: Annotated[bool | None, typer.Option("--exact", help=_help("exact"))] = None,
    max_span_tokens: Annotated[int | None, typer.Option(help=_help("max_span_tokens"))] = None,
    max_context_tokens: Annotated[
        int | None, typer.Option(help=_help("max_context_tokens"))
    ] = None,
    max_pending: Annotated[int | None, typer.Option(help=_help("max_pending"))] = None,
    replay_per_session: Annotated[
        int | None, typer.Option(help=_help("replay_per_session"))
    ] = None,
    replay_seconds: Annotated[float | None, typer.Option(help=_help("replay_seconds"))] = None,
    replay_max_bytes: Annotated[int | None, typer.Option(help=_help("replay_max_bytes"))] = None,
    chat_template: Annotated[Path | None, typer.Option(help=_help("chat_template"))] = None,
    api_key_file: Annotated[Path | None, typer.Option(help=_help("api_key_file"))] = None,
    tls_cert: Annotated[Path | None, typer.Option(help=_help("tls_cert"))] = None,
    tls_key: Annotated[Path | None, typer.Option(help=_help("tls_key"))] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help=_help("tls_client_ca"))] = None,
    allow_insecure: Annotated[
        bool | None, typer.Option("--allow-insecure", help=_help("allow_insecure"))
    ] = None,
    max_message_bytes: Annotated[int | None, typer.Option(help=_help("max_message_bytes"))] = None,
    key_tokens_per_minute: Annotated[
        int | None, typer.Option(help=_help("key_tokens_per_minute"))
    ] = None,
    max_calls_per_key: Annotated[int | None, typer.Option(help=_help("max_calls_per_key"))] = None,
    max_sessions: Annotated[int | None, typer.Option(help=_help("max_sessions"))] = None,
    grace_seconds: Annotated[float | None, typer.Option(help=_help("grace_seconds"))] = None,
    log_level: Annotated[str | None, typer.Option(help=_help("log_level"))] = None,
) -> None:
    """Serve relay.v1 until SIGTERM or SIGINT, then drain and exit 0."""
    flags: dict[str, Any] = {
        "host": host,
        "port": port,
        "metrics_port": metrics_port,
        "ready_file": ready_file,
        "engine": engine,
        "model": model,
        "n_ctx": n_ctx,
        "slots": slots,
        "kv_sessions": kv_sessions,
        "threads": threads,
        "n_ubatch": n_ubatch,
        "exact": exact,
        "max_span_tokens": max_span_tokens,
        "max_context_tokens": max_context_tokens,
        "max_pending": max_pending,
        "replay_per_session": replay_per_session,
        "replay_seconds": replay_seconds,
        "replay_max_bytes": replay_max_bytes,
        "chat_template": chat_template,
        "api_key_file": api_key_file,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": tls_client_ca,
        "allow_insecure": allow_insecure,
        "max_message_bytes": max_message_bytes,
        "key_tokens_per_minute": key_tokens_per_minute,
        "max_calls_per_key": max_calls_per_key,
        "max_sessions": max_sessions,
        "grace_seconds": grace_seconds,
        "log_level": log_level,
    }
    _run(lambda: _serve({k: v for k, v in flags.items() if v is not None}, config))


def _serve(flags: dict[str, Any], config: Path | None) -> None:
    settings = load_settings(config_file=config, **flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve_forever(settings))


def _run(command: Callable[[], None]) -> None:
    """Runs a command; a known error is one line on stderr and a non-zero exit."""
    try:
        command()
    except ConfigError as exc:
        typer.echo(f"relay-teacher: error: {exc}", err=True)
        raise typer.Exit(2) from None
    except TeacherError as exc:
        typer.echo(f"relay-teacher: error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()
