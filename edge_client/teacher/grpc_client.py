"""`TeacherClient` over a synchronous gRPC channel: deadlines, retries, circuit breaker.

    client = GrpcTeacherClient("teacher.example.com:50051", settings=TeacherClientSettings())
    info = client.info()                      # cached after the first call
    reply = client.generate_span(request)     # SpanReply, or a TeacherCallError subclass
    client.state                              # TeacherState.ONLINE / DEGRADED / OFFLINE
    client.close()

Each attempt has its own deadline; tenacity retries UNAVAILABLE, DEADLINE_EXCEEDED and
RESOURCE_EXHAUSTED with jittered exponential back-off (or the delay the teacher named in a
`google.rpc.RetryInfo`), bounded by attempts and by the call's latency budget, reusing the
request (and so its request_id: the teacher replays, never re-generates or re-bills).
grpc.RpcError is mapped to the edge's errors in `_map_rpc_error` only; retries key on
`TeacherUnavailableError`. Span calls also carry the session id as the `x-relay-session`
header, which session-hashing proxies route on (relay_common/routing.py).

Only unavailability counts against the teacher in the circuit breaker; a refusal shows the
teacher is up. A refusal of the edge's credentials (UNAUTHENTICATED, PERMISSION_DENIED) would
repeat on every call, so the client makes no further call and its state is REFUSED (not
OFFLINE: the teacher is up, the key is wrong). A call given a `cancel` event stops as soon as
it is set: the RPC is cancelled, and the breaker counts nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from edge_client.errors import (
    CallCancelledError,
    CircuitOpenError,
    TeacherCallError,
    TeacherCredentialsError,
    TeacherRejectedError,
    TeacherUnavailableError,
)
from edge_client.teacher.address import parse_address
from edge_client.teacher.breaker import BreakerState, CircuitBreaker
from edge_client.teacher.channel import ChannelSecurity, open_channel
from edge_client.teacher.client import (
    SpanQuery,
    SpanReply,
    TeacherInfo,
    TeacherState,
    TeacherUsage,
)
from edge_client.teacher.settings import TeacherClientSettings
from edge_client.teacher.status_details import retry_delay_s
from edge_client.teacher.wire import info_from_proto, span_request_to_proto
from relay_common.echo import clipped
from relay_common.routing import SESSION_HEADER, session_header_value
from relay_proto import relay_pb2, relay_pb2_grpc

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)

_CREDENTIALS_REFUSED = frozenset(
    {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
)

# How often a call in flight looks at its cancel event: short enough that Ctrl-C feels
# immediate, long enough to cost nothing.
_CANCEL_CHECK_S = 0.05

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
        self._credentials_refused: str | None = None  # the refusal, once seen

    @property
    def state(self) -> TeacherState:
        if self._credentials_refused is not None:
            return TeacherState.REFUSED
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

    def generate_span(
        self, request: SpanQuery, *, cancel: threading.Event | None = None
    ) -> SpanReply:
        message = span_request_to_proto(request)
        # A session-hashing proxy routes on this header: it cannot read the body.
        metadata = ((SESSION_HEADER, session_header_value(request.session_id)),)
        response, outcome = self._call(
            self._stub.GenerateSpan, message, metadata=metadata, cancel=cancel
        )
        usage = response.usage
        return SpanReply(
            token_ids=list(response.token_ids),
            text=response.text,
            ended_answer=response.finish_reason == relay_pb2.FINISH_REASON_END_OF_ANSWER,
            retries=outcome.attempts - 1,
            latency_ms=outcome.latency_ms,
            compute_ms=response.usage.compute_time_ms,
            wire_bytes=outcome.wire_bytes,
            teacher_usage=TeacherUsage(
                prompt_tokens=usage.prompt_tokens,
                cached_prompt_tokens=usage.cached_prompt_tokens,
                generated_tokens=usage.generated_tokens,
                replayed=usage.replayed,
                draft_tokens=usage.draft_tokens,
            ),
            accepted_draft_tokens=response.accepted_draft_tokens,
        )

    def close(self) -> None:
        self._channel.close()

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable,
        request: Message,
        *,
        metadata: tuple[tuple[str, str], ...] = (),
        cancel: threading.Event | None = None,
    ) -> tuple[Any, _Outcome]:
        """One call through the breaker, with retries; returns the response and what the call
        cost (latency measured here, back-off included). A TeacherCallError carries the same."""
        self._refuse_if_pointless()
        started = time.perf_counter()
        outcome = _Outcome()
        request_bytes = request.ByteSize()
        budget_s = self.settings.latency_budget_s
        stop_event = cancel or threading.Event()

        def attempt() -> Any:
            if stop_event.is_set():
                raise CallCancelledError("the teacher call was cancelled")
            outcome.attempts += 1
            outcome.wire_bytes += request_bytes
            remaining_s = budget_s - (time.perf_counter() - started)
            future = method.future(
                request, timeout=min(self.settings.deadline_s, remaining_s), metadata=metadata
            )
            response = _await(future, stop_event, address=self.address)
            outcome.wire_bytes += response.ByteSize()
            return response

        retrying = Retrying(
            retry=retry_if_exception_type(TeacherUnavailableError),
            stop=stop_after_attempt(self.settings.attempts) | stop_before_delay(budget_s),
            wait=_RetryInfoOr(
                wait_random_exponential(
                    multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s
                )
            ),
            sleep=stop_event.wait,  # a cancel ends the back-off at once
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except TeacherCallError as exc:
            exc.retries = max(0, outcome.attempts - 1)
            exc.latency_ms = (time.perf_counter() - started) * 1000
            exc.wire_bytes = outcome.wire_bytes
            self._judge(exc)
            raise
        except BaseException:
            # Interrupted mid-call: no verdict on the teacher, but a probe must not hang.
            self._breaker.record_abandoned()
            raise
        outcome.latency_ms = (time.perf_counter() - started) * 1000
        self._breaker.record_success()
        self._last_call_clean = outcome.attempts == 1
        return response, outcome

    def _refuse_if_pointless(self) -> None:
        """Raises, without touching the network, when the call cannot succeed."""
        if self._credentials_refused is not None:
            raise TeacherCredentialsError(self._credentials_refused, sent=False)
        if not self._breaker.allow():
            self._last_call_clean = False
            raise CircuitOpenError(
                f"teacher at {self.address} is offline after {self.settings.breaker_threshold} "
                "failed calls in a row; it is probed again after "
                f"{self.settings.breaker_cooldown_s:g} s, the student writes meanwhile"
            )

    def _judge(self, error: TeacherCallError) -> None:
        """What a failed call says about the teacher: only unavailability is held against it."""
        if isinstance(error, TeacherUnavailableError):
            self._breaker.record_failure()
            self._last_call_clean = False
        elif isinstance(error, TeacherRejectedError):
            self._breaker.record_success()  # the teacher is up: it answered
            if isinstance(error, TeacherCredentialsError):
                self._credentials_refused = str(error)
        else:  # cancelled
            self._breaker.record_abandoned()


class _RetryInfoOr(wait_base):
    """Waits the delay the teacher named in a RetryInfo, else `fallback`'s back-off. The
    latency budget still bounds it (tenacity's stop_before_delay)."""

    def __init__(self, fallback: wait_base) -> None:
        self._fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        named = getattr(error, "retry_after_s", None)
        return self._fallback(retry_state) if named is None else named


def _await(future: grpc.Future, cancel: threading.Event, *, address: str) -> Any:
    """The future's response; the RPC is cancelled as soon as `cancel` is set."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    while not done.wait(_CANCEL_CHECK_S):
        if cancel.is_set():
            future.cancel()
            raise CallCancelledError(f"the call to the teacher at {address} was cancelled")
    try:
        return future.result()
    except grpc.FutureCancelledError as exc:
        raise CallCancelledError(f"the call to the teacher at {address} was cancelled") from exc
    except grpc.RpcError as exc:
        raise _map_rpc_error(exc, address=address) from exc


def _map_rpc_error(exc: grpc.RpcError, *, address: str) -> TeacherCallError:
    """The one place where gRPC status codes become the edge's errors."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = clipped((exc.details() if isinstance(exc, grpc.Call) else None) or "no details")
    if code in _RETRYABLE:
        return TeacherUnavailableError(
            f"teacher at {address} is unavailable ({code.name}: {details})",
            retry_after_s=retry_delay_s(exc),
        )
    hint = _REJECTION_HINTS.get(code)
    message = f"teacher at {address} refused the request ({code.name}: {details})" + (
        f"; {hint}" if hint else ""
    )
    if code in _CREDENTIALS_REFUSED:
        return TeacherCredentialsError(
            f"{message}. No further calls are made in this session; the student writes alone"
        )
    return TeacherRejectedError(message)
