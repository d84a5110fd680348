"""The teacher's Prometheus metrics: one registry per server, served at /metrics on its own port.

    metrics = TeacherMetrics(sessions_held=lambda: book.sessions_held, call_labels=())
    metrics.span_started(labels)
    metrics.span_finished(labels, finish_reason="length", usage=usage)
    endpoint = metrics.serve(host="0.0.0.0", port=9090)   # MetricsEndpoint; .port, .close()

No gRPC here (`metrics/interceptor.py` observes the calls) and no module-global state: several
servers in one process each export their own. docs/metrics.md documents every metric.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cloud_teacher.errors import ConfigError
from relay_proto import relay_pb2

PREFIX = "relay_teacher_"

_QUEUE_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_COMPUTE_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

Labels = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """The HTTP server behind /metrics, on its own thread."""

    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class TeacherMetrics:
    """The metrics of one teacher server. `sessions_held` is read at each scrape; every
    per-call metric carries the `call_labels` (their values come with each call)."""

    def __init__(
        self, *, sessions_held: Callable[[], int], call_labels: tuple[str, ...] = ()
    ) -> None:
        self.registry = CollectorRegistry()
        call = call_labels  # first in every per-call metric's label names

        def counter(name: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(PREFIX + name, help_text, [*call, *labels], registry=self.registry)

        def histogram(name: str, help_text: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(
                PREFIX + name, help_text, call, buckets=buckets, registry=self.registry
            )

        self._started = counter("spans_started", "Span calls received (GenerateSpan, StreamSpan).")
        self._finished = counter(
            "spans_finished", "Spans generated to their end, by finish reason.", ("finish_reason",)
        )
        self._replayed = counter(
            "spans_replayed", "Span calls answered from an earlier call with the same request_id."
        )
        self._prompt_tokens = counter("prompt_tokens", "Context tokens of generated spans.")
        self._cached_tokens = counter(
            "cached_prompt_tokens", "Of the prompt tokens, those served from the session's cache."
        )
        self._generated_tokens = counter("generated_tokens", "Tokens generated in spans.")
        self._draft_tokens = counter(
            "draft_tokens", "Draft tokens read to check them (teacher-verified relay)."
        )
        self._accepted_draft_tokens = counter(
            "accepted_draft_tokens", "Of the draft tokens, those the teacher accepted."
        )
        self._queue = histogram(
            "queue_seconds", "Time a span waited for a free engine slot.", _QUEUE_BUCKETS_S
        )
        self._compute = histogram(
            "compute_seconds", "Time the engine spent on a span.", _COMPUTE_BUCKETS_S
        )
        self._errors = counter(
            "errors",
            "relay.v1 calls that ended with an error, by method and status code.",
            ("method", "code"),
        )
        self._in_flight = Gauge(
            PREFIX + "spans_in_flight",
            "Span calls in progress (running or queued).",
            call,
            registry=self.registry,
        )
        sessions = Gauge(
            PREFIX + "sessions", "Sessions whose usage the teacher holds.", registry=self.registry
        )
        sessions.set_function(sessions_held)

    def span_started(self, labels: Labels) -> None:
        _child(self._started, labels).inc()
        _child(self._in_flight, labels).inc()

    def span_ended(self, labels: Labels) -> None:
        """The call is over, whatever its outcome (after `span_finished` or `call_failed`)."""
        _child(self._in_flight, labels).dec()

    def span_finished(
        self,
        labels: Labels,
        *,
        finish_reason: str,
        usage: relay_pb2.SpanUsage,
        accepted_draft_tokens: int = 0,
    ) -> None:
        if usage.replayed:
            _child(self._replayed, labels).inc()
            return
        self._finished.labels(**labels, finish_reason=finish_reason).inc()
        _child(self._prompt_tokens, labels).inc(usage.prompt_tokens)
        _child(self._cached_tokens, labels).inc(usage.cached_prompt_tokens)
        _child(self._generated_tokens, labels).inc(usage.generated_tokens)
        _child(self._draft_tokens, labels).inc(usage.draft_tokens)
        _child(self._accepted_draft_tokens, labels).inc(accepted_draft_tokens)
        _child(self._queue, labels).observe(usage.queue_time_ms / 1000)
        _child(self._compute, labels).observe(usage.compute_time_ms / 1000)

    def call_failed(self, labels: Labels, *, method: str, code: str) -> None:
        self._errors.labels(**labels, method=method, code=code).inc()

    def serve(self, *, host: str, port: int) -> MetricsEndpoint:
        """Serves /metrics on `host`:`port` (0: a free port); `ConfigError` if it cannot."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); choose another "
                "--metrics-port, or stop the process using it"
            ) from exc
        return MetricsEndpoint(port=server.server_port, _server=server, _thread=thread)


def _child(metric: Counter | Gauge | Histogram, labels: Labels) -> Counter | Gauge | Histogram:
    """The labelled series, or the metric itself when it has no labels."""
    return metric.labels(**labels) if labels else metric
