"""`TeacherClient` over a synchronous gRPC channel: deadlines, retries, circuit breaker.

    client = GrpcTeacherClient("teacher.example.com:50051", settings=TeacherClientSettings())
    info = client.info()                      # cached after the first call
    reply = client.generate_span(request)     # SpanReply, or a TeacherCallError subclass
    client.state                              # TeacherState.ONLINE / DEGRADED / OFFLINE
    client.close()

Each attempt has its own deadline; tenacity retries UNAVAILABLE, DEADLINE_EXCEEDED and
RESOURCE_EXHAUSTED with jittered exponential back-off, bounded by attempts and by the call's
latency budget, reusing the request (and so its request_id: the teacher replays, never
re-generates or re-bills). grpc.RpcError is mapped to the edge's errors in `_map_rpc_error`
only; retries key on `TeacherUnavailableError`. Span calls also carry the session id as the
`x-relay-session` header, which session-hashing proxies route on (relay_common/routing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from edge_client.errors import (
    CircuitOpenError,
    TeacherCallError,
    TeacherRejectedError,
    TeacherUnavailableError,
)
from edge_client.teacher.address import parse_address
from edge_client.teacher.breaker import BreakerState, CircuitBreaker
from edge_client.teacher.channel import ChannelSecurity, open_channel
from edge_client.teacher.client import SpanQuery, SpanReply, TeacherInfo, TeacherState
from edge_client.teacher.settings import TeacherClientSettings
from edge_client.teacher.wire import info_from_proto, span_request_to_proto
from relay_common.routing import SESSION_HEADER, session_header_value
from relay_proto import relay_pb2, relay_pb2_grpc

ResponseT = TypeVar("ResponseT", bound=Message)

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

# What the user can do about a refusal, where the status code says it.
_REJECTION_HINTS = {
    grpc.StatusCode.UNAUTHENTICATED: "check the teacher's API key",
    grpc.StatusCode.PERMISSION_DENIED: "check the teacher's API key and its permissions",
    grpc.StatusCode.UNIMPLEMENTED: "is the address a relay.v1 teacher?",
}

_CHANNEL_OPTIONS = (
    # tenacity is the one retry layer (DESIGN §5); gRPC's own retries would multiply attempts.
    ("grpc.enable_retries", 0),
    # gRPC waits up to 120 s between reconnects by default and fails calls fast meanwhile, so a
    # teacher that came back would look dead to the breaker's probe; keep the wait short.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


@dataclass(slots=True)
class _Outcome:
    """What one call (all its attempts) cost."""

    attempts: int = 0
    wire_bytes: int = 0
    latency_ms: float = 0.0


class GrpcTeacherClient:
    """A relay.v1 teacher at `address` ("HOST:PORT", checked: ConfigError when malformed).

    `security` is TLS and the API key (default: plaintext, no key). `clock` drives the circuit
    breaker's cool-down (seconds, time.monotonic by default), so tests can step past it
    without sleeping. Thread-safe as far as gRPC channels are.
    """

    def __init__(
        self,
        address: str,
        *,
        settings: TeacherClientSettings | None = None,
        security: ChannelSecurity | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = parse_address(address)
        self.settings = settings or TeacherClientSettings()
        self._channel = open_channel(
            self.address, security or ChannelSecurity(), options=_CHANNEL_OPTIONS
        )
        self._stub = relay_pb2_grpc.TeacherServiceStub(self._channel)
        self._breaker = CircuitBreaker(
            threshold=self.settings.breaker_threshold,
            cooldown_s=self.settings.breaker_cooldown_s,
            clock=clock,
        )
        self._info: TeacherInfo | None = None
        self._last_call_clean = True  # succeeded at the first attempt

    @property
    def state(self) -> TeacherState:
        breaker = self._breaker.state
        if breaker is BreakerState.OPEN:
            return TeacherState.OFFLINE
        if breaker is BreakerState.HALF_OPEN or not self._last_call_clean:
            return TeacherState.DEGRADED
        return TeacherState.ONLINE

    def info(self) -> TeacherInfo:
        if self._info is None:
            response, _ = self._call(self._stub.GetInfo, relay_pb2.GetInfoRequest())
            self._info = info_from_proto(response)
        return self._info

    def generate_span(self, request: SpanQuery) -> SpanReply:
        message = span_request_to_proto(request)
        # A session-hashing proxy routes on this header: it cannot read the body.
        metadata = ((SESSION_HEADER, session_header_value(request.session_id)),)
        response, outcome = self._call(self._stub.GenerateSpan, message, metadata=metadata)
        return SpanReply(
            token_ids=list(response.token_ids),
            text=response.text,
            ended_answer=response.finish_reason == relay_pb2.FINISH_REASON_END_OF_ANSWER,
            retries=outcome.attempts - 1,
            latency_ms=outcome.latency_ms,
            compute_ms=response.usage.compute_time_ms,
            wire_bytes=outcome.wire_bytes,
        )

    def close(self) -> None:
        self._channel.close()

    def _call(
        self,
        method: Callable[..., ResponseT],
        request: Message,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> tuple[ResponseT, _Outcome]:
        """One call through the breaker, with retries; returns the response and what the call
        cost (latency measured here, back-off included). A TeacherCallError carries the same."""
        if not self._breaker.allow():
            self._last_call_clean = False
            raise CircuitOpenError(
                f"teacher at {self.address} is offline after {self.settings.breaker_threshold} "
                "failed calls in a row; it is probed again after "
                f"{self.settings.breaker_cooldown_s:g} s, the student writes meanwhile"
            )
        started = time.perf_counter()
        outcome = _Outcome()
        request_bytes = request.ByteSize()
        budget_s = self.settings.latency_budget_s

        def attempt() -> ResponseT:
            outcome.attempts += 1
            outcome.wire_bytes += request_bytes
            remaining_s = budget_s - (time.perf_counter() - started)
            try:
                response = method(
                    request,
                    timeout=min(self.settings.deadline_s, remaining_s),
                    metadata=metadata,
                )
            except grpc.RpcError as exc:
                raise _map_rpc_error(exc, address=self.address) from exc
            outcome.wire_bytes += response.ByteSize()
            return response

        retrying = Retrying(
            retry=retry_if_exception_type(TeacherUnavailableError),
            stop=stop_after_attempt(self.settings.attempts) | stop_before_delay(budget_s),
            wait=wait_random_exponential(
                multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s
            ),
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except TeacherCallError as exc:
            exc.retries = outcome.attempts - 1
            exc.latency_ms = (time.perf_counter() - started) * 1000
            exc.wire_bytes = outcome.wire_bytes
            self._breaker.record_failure()
            self._last_call_clean = False
            raise
        except BaseException:
            # Interrupted (Ctrl-C) mid-call: count it, or a probe in flight would never end.
            self._breaker.record_failure()
            raise
        outcome.latency_ms = (time.perf_counter() - started) * 1000
        self._breaker.record_success()
        self._last_call_clean = outcome.attempts == 1
        return response, outcome


def _map_rpc_error(exc: grpc.RpcError, *, address: str) -> TeacherCallError:
    """The one place where gRPC status codes become the edge's errors."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or "no details"
    if code in _RETRYABLE:
        return TeacherUnavailableError(
            f"teacher at {address} is unavailable ({code.name}: {details})"
        )
    hint = _REJECTION_HINTS.get(code)
    return TeacherRejectedError(
        f"teacher at {address} refused the request ({code.name}: {details})"
        + (f"; {hint}" if hint else "")
    )
