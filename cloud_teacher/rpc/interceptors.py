"""Server interceptors for relay.v1 calls (health and reflection pass untouched):

- `ErrorStatusInterceptor`: the one place domain errors become gRPC status codes (and a
  quota refusal gets its `google.rpc.RetryInfo`);
- `CallerInterceptor`: who is calling (API key), and the per-caller limits;
- `MetricsInterceptor` (metrics/interceptor.py) builds on `RelayInterceptor` too.

    grpc.aio.server(interceptors=[ErrorStatusInterceptor(), CallerInterceptor(keys, limits)])

The first interceptor wraps the second, so errors raised by the caller checks get their status
code too.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from cloud_teacher.access.keys import ANONYMOUS, Caller, KeyRing, current_caller
from cloud_teacher.access.quota import CallerLimits
from cloud_teacher.errors import (
    EngineDeadError,
    InvalidRequestError,
    OverloadedError,
    QuotaExceededError,
    SessionNotFoundError,
    TeacherError,
    UnauthenticatedError,
)
from relay_common.echo import clipped
from relay_proto import relay_pb2

log = logging.getLogger(__name__)

_SERVICE_PREFIX = "/relay.v1."
# The longest status message sent: far below gRPC's metadata limit (8 KiB by default), whose
# excess a client sees as RESOURCE_EXHAUSTED instead of the real code.
MAX_MESSAGE_CHARS = 600

# First match wins; a TeacherError not listed is our bug, hence INTERNAL.
STATUS_BY_ERROR: tuple[tuple[type[TeacherError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (SessionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (EngineDeadError, grpc.StatusCode.UNAVAILABLE),
)

# The client's mistakes are routine; overload is worth a look; the rest needs someone.
_LOG_LEVELS = {
    grpc.StatusCode.INVALID_ARGUMENT: logging.INFO,
    grpc.StatusCode.UNAUTHENTICATED: logging.INFO,
    grpc.StatusCode.NOT_FOUND: logging.INFO,
    grpc.StatusCode.RESOURCE_EXHAUSTED: logging.WARNING,
}

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Stream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


def status_for(error: TeacherError) -> grpc.StatusCode:
    for kind, code in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


class RelayInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the behaviour of relay.v1 methods with `wrap_unary` / `wrap_stream`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(_SERVICE_PREFIX):
            return handler
        deserializer = self.wrap_deserializer(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(handler.unary_unary, handler_call_details),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(handler.unary_stream, handler_call_details),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def wrap_deserializer(
        self, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        return deserializer

    def wrap_unary(self, behavior: Unary, details: grpc.HandlerCallDetails) -> Unary:
        raise NotImplementedError

    def wrap_stream(self, behavior: Stream, details: grpc.HandlerCallDetails) -> Stream:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A request whose bytes are not the method's message (gRPC would answer INTERNAL)."""

    reason: str


def _check_decoded(request: Any, method: str) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidRequestError(
            f"the request is not a valid {method.rpartition('/')[2]} message "
            f"({request.reason}); build it with the relay.v1 protobuf definitions"
        )


class ErrorStatusInterceptor(RelayInterceptor):
    """Aborts relay.v1 calls that raise `TeacherError` with its status code and message, and
    refuses undecodable requests with INVALID_ARGUMENT. Any other exception is a bug of the
    teacher: logged with its traceback, answered INTERNAL (gRPC's own answer would be UNKNOWN,
    with the exception's text)."""

    def wrap_deserializer(
        self, deserializer: Callable[[bytes], Any] | None
    ) -> Callable[[bytes], Any] | None:
        if deserializer is None:
            return None

        def decode(data: bytes) -> Any:
            try:
                return deserializer(data)
            except DecodeError as exc:  # garbage, invalid UTF-8 in a string field
                return _Undecodable(clipped(str(exc)) or "cannot parse the bytes")

        return decode

    def wrap_unary(self, behavior: Unary, details: grpc.HandlerCallDetails) -> Unary:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                _check_decoded(request, details.method)
                return await behavior(request, context)
            except TeacherError as exc:
                await _abort(context, exc)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_internal(context, exc, details.method)

        return unary

    def wrap_stream(self, behavior: Stream, details: grpc.HandlerCallDetails) -> Stream:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                _check_decoded(request, details.method)
                async for response in behavior(request, context):
                    yield response
            except TeacherError as exc:
                await _abort(context, exc)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_internal(context, exc, details.method)

        return stream


async def _abort(context: grpc.aio.ServicerContext, error: TeacherError) -> None:
    code = status_for(error)
    # Messages name what is wrong, never a prompt or an answer, and quote what the caller sent
    # cut short (relay_common.echo); the cut here only guards against a value echoed whole.
    message = clipped(str(error), limit=MAX_MESSAGE_CHARS)
    log.log(_LOG_LEVELS.get(code, logging.ERROR), "%s: %s", code.name, message)
    if isinstance(error, QuotaExceededError):
        status = rpc_status.to_status(_with_retry_info(code, message, error.retry_after_s))
        await context.abort(status.code, status.details, status.trailing_metadata)
    await context.abort(code, message)


async def _abort_internal(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    # The frames, and the error's text cut short: it may hold what the caller sent.
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("%s failed: %s\n%s", method, clipped(repr(error)), frames)
    await context.abort(
        grpc.StatusCode.INTERNAL,
        f"the teacher failed on this call ({type(error).__name__}); this is a bug of the "
        "teacher: report it with the teacher's log, and do not retry the same request in a loop",
    )


def _with_retry_info(code: grpc.StatusCode, message: str, delay_s: float) -> status_pb2.Status:
    """A google.rpc.Status carrying RetryInfo: the standard detail clients honour."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(delay_s * 1e9))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(code=code.value[0], message=message, details=[detail])


# Told of each call the caller checks refuse (no valid key, the per-key call cap): the calls
# that never reach the interceptors inside (the metrics).
RefusalHook = Callable[[grpc.HandlerCallDetails, grpc.aio.ServicerContext, TeacherError], None]


class CallerInterceptor(RelayInterceptor):
    """Finds the caller from `authorization: Bearer <key>` (when the teacher has keys), makes
    it `current_caller` for the call, holds the call to the caller's concurrent-call limit and
    charges what it generated to the caller's quota (which the teacher checks before it
    generates: see access/quota.py). `on_refused` hears of every call it refuses."""

    def __init__(
        self, keys: KeyRing | None, limits: CallerLimits, *, on_refused: RefusalHook | None = None
    ) -> None:
        self._keys = keys
        self._limits = limits
        self._on_refused = on_refused

    def wrap_unary(self, behavior: Unary, details: grpc.HandlerCallDetails) -> Unary:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._admitted(details, context) as caller:
                response = await behavior(request, context)
                self._limits.charge(caller.tenant, _generated_tokens(response))
                return response

        return unary

    def wrap_stream(self, behavior: Stream, details: grpc.HandlerCallDetails) -> Stream:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self._admitted(details, context) as caller:
                async for response in behavior(request, context):
                    self._limits.charge(caller.tenant, _generated_tokens(response))
                    yield response

        return stream

    @contextlib.contextmanager
    def _admitted(
        self, details: grpc.HandlerCallDetails, context: grpc.aio.ServicerContext
    ) -> Iterator[Caller]:
        """The identified caller, holding one of its concurrent calls for the block."""
        with contextlib.ExitStack() as admission:
            try:
                caller = self._identify(details)
                current_caller.set(caller)
                admission.enter_context(self._limits.admit(caller))
            except TeacherError as refusal:
                if self._on_refused is not None:
                    self._on_refused(details, context, refusal)
                raise
            yield caller

    def _identify(self, details: grpc.HandlerCallDetails) -> Caller:
        if self._keys is None:
            return ANONYMOUS
        values = [
            value
            for key, value in details.invocation_metadata or ()
            if key == "authorization" and isinstance(value, str)
        ]
        if not values:
            raise UnauthenticatedError(
                "this teacher needs an API key: send the metadata 'authorization: Bearer <key>' "
                "(relay-edge: --api-key-file or RELAY_API_KEY)"
            )
        scheme, _, key = values[0].partition(" ")
        caller = self._keys.authenticate(key.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise UnauthenticatedError(
                "the API key is not valid (expected 'authorization: Bearer <key>' with a key "
                "this teacher knows); check the key or ask the operator for one"
            )
        return caller


def _generated_tokens(response: Any) -> int:
    """Tokens a span response newly generated (replays are free); 0 for other responses."""
    usage = getattr(response, "usage", None)
    if not isinstance(usage, relay_pb2.SpanUsage) or usage.replayed:
        return 0
    return usage.generated_tokens
