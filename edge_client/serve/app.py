"""The HTTP face of `relay-edge serve`: Starlette routes over an AnswerWorker.

    app = create_app(worker, settings=settings, keys=None)   # uvicorn serves it
    GET  /                      the chat page            GET /health    state, queue
    GET  /v1/models             the student              POST /v1/chat/completions

Handlers only translate: a request is validated (requests.py), handed to the worker, and its
outputs are written as OpenAI's JSON or server-sent events (shapes.py). Every refusal is an
ApiError rendered as OpenAI's error JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from edge_client.relay.events import TokensAppended
from edge_client.serve import shapes
from edge_client.serve.answer_text import AnswerText, Piece
from edge_client.serve.errors import ApiError
from edge_client.serve.keys import ApiKeys
from edge_client.serve.requests import ChatRequest, parse_chat_request
from edge_client.serve.worker import AnswerRequest, AnswerSummary, AnswerWorker, Job, Output
from edge_client.settings import EdgeSettings
from relay_common.echo import quoted

MAX_BODY_BYTES = 8 << 20
SESSION_HEADER = "x-relay-session"
MAX_SESSION_ID = 200
_DISCONNECT_POLL_S = 0.25  # how often a request still waiting for its answer looks at its client
_OPEN_PATHS = ("/health", "/static/")  # and the page itself: it asks for the key
_STATIC = resources.files("edge_client.serve") / "static"


def create_app(
    worker: AnswerWorker, *, settings: EdgeSettings, keys: ApiKeys | None = None
) -> Starlette:
    started = int(time.time())
    model = worker.runtime.session.student.model_name
    # Long enough for the answer in progress to finish (or be cancelled) at shutdown.
    shutdown_grace_s = settings.serve.grace_s + 5

    async def page(request: Request) -> Response:
        return FileResponse(str(_STATIC / "index.html"))

    async def health(request: Request) -> Response:
        runtime = worker.runtime
        state = runtime.teacher_state
        return JSONResponse(
            {
                "status": "ok",
                "model": model,
                "teacher": runtime.teacher_label,
                "teacher_state": state.value if state is not None else None,
                "mode": runtime.mode,
                "policy": runtime.policy,
                "busy": worker.busy,
                "waiting": worker.waiting,
                "queue": settings.serve.queue,
            }
        )

    async def models(request: Request) -> Response:
        return JSONResponse(shapes.model_list(model, created=started))

    async def chat_completions(request: Request) -> Response:
        chat = parse_chat_request(await _body(request))
        if chat.model != model:
            raise ApiError(
                404,
                f"the model {quoted(chat.model)} does not exist here; this server serves {model!r} "
                "(GET /v1/models)",
                param="model",
                code="model_not_found",
            )
        job = worker.submit(
            AnswerRequest(
                session_id=_session_id(request, chat),
                messages=chat.chat_messages(),
                options=chat.relay_options(settings),
            )
        )
        try:
            # The first output says whether the answer started (or why not): the status.
            first = await _next_while_connected(job, request)
        except BaseException:
            worker.cancel(job)
            raise
        if isinstance(first, ApiError):
            raise first
        ids = shapes.CompletionIds(model=model)
        if chat.stream:
            return EventSourceResponse(
                _stream(worker, job, chat, ids),
                sep="\n",
                shutdown_grace_period=shutdown_grace_s,
            )
        return await _complete(worker, job, request, chat, ids)

    routes = [
        Route("/", page),
        Route("/health", health),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(_STATIC)), name="static"),
    ]
    middleware = [] if keys is None else [Middleware(_RequireKey, keys=keys)]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )


async def _complete(
    worker: AnswerWorker, job: Job, request: Request, chat: ChatRequest, ids: shapes.CompletionIds
) -> Response:
    text = AnswerText(stops=chat.stop_strings)
    while True:
        try:
            output = await _next_while_connected(job, request)
        except BaseException:
            worker.cancel(job)
            raise
        if isinstance(output, TokensAppended):
            text.add(output)
        elif isinstance(output, ApiError):
            raise output
        elif isinstance(output, AnswerSummary):
            text.finish()
            return JSONResponse(shapes.completion(ids, text.text, output, stopped=text.stopped))


async def _stream(
    worker: AnswerWorker, job: Job, chat: ChatRequest, ids: shapes.CompletionIds
) -> AsyncIterator[dict[str, str]]:
    """The answer as server-sent events: chunks, the usage chunk if asked, then [DONE].
    Closed early (the client went away, or the server stops), it cancels the answer."""
    text = AnswerText(stops=chat.stop_strings)
    with_usage = chat.include_usage

    def event(body: dict[str, Any]) -> dict[str, str]:
        return {"data": json.dumps(body, ensure_ascii=False, separators=(",", ":"))}

    def pieces(released: list[Piece]) -> list[dict[str, str]]:
        return [
            event(
                shapes.chunk(
                    ids,
                    delta={"content": piece.text, "relay": {"source": piece.source.value}},
                    with_usage=with_usage,
                )
            )
            for piece in released
        ]

    finished = False
    try:
        yield event(
            shapes.chunk(ids, delta={"role": "assistant", "content": ""}, with_usage=with_usage)
        )
        while not finished:
            output = await job.next()
            if isinstance(output, TokensAppended):
                for each in pieces(text.add(output)):
                    yield each
            elif isinstance(output, ApiError):
                finished = True
                yield event(output.body())
            elif isinstance(output, AnswerSummary):
                finished = True
                for each in pieces(text.finish()):
                    yield each
                finish = shapes.finish_reason(output, stopped=text.stopped)
                yield event(shapes.chunk(ids, finish=finish, with_usage=with_usage))
                if with_usage:
                    yield event(
                        shapes.chunk(ids, usage_object=shapes.usage(output), with_usage=True)
                    )
        yield {"data": "[DONE]"}
    finally:
        if not finished:
            worker.cancel(job)


async def _next_while_connected(job: Job, request: Request) -> Output:
    """The job's next output; ApiError if the client disconnects first (it is gone: the
    error is for the log, not for it)."""
    while True:
        try:
            return await asyncio.wait_for(job.next(), timeout=_DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                raise ApiError(499, "the client closed the connection") from None


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> ApiError:
    return ApiError(
        413, f"the request body is over {MAX_BODY_BYTES >> 20} MiB", code="request_too_large"
    )


def _session_id(request: Request, chat: ChatRequest) -> str:
    """The conversation's ledger session: the x-relay-session header, else the `user` field,
    else a new session for this request alone."""
    named = request.headers.get(SESSION_HEADER) or chat.user
    if named is None:
        return uuid.uuid4().hex
    param = SESSION_HEADER if request.headers.get(SESSION_HEADER) else "user"
    if not 0 < len(named) <= MAX_SESSION_ID or not named.isprintable():
        raise ApiError(
            400,
            f"{param}: a session id is 1 to {MAX_SESSION_ID} printable characters",
            param=param,
        )
    return named


class _RequireKey:
    """ASGI middleware: every route but the page, its files and /health needs a valid key
    (pure ASGI, so streamed answers and client disconnects pass through untouched)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/" or path.startswith(_OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        scheme, _, key = Headers(scope=scope).get("authorization", "").partition(" ")
        refusal = None
        if scheme.lower() != "bearer" or not key.strip():
            refusal = "no API key: send 'Authorization: Bearer <key>'"
        elif not self.keys.accepts(key.strip()):
            refusal = "the API key is not valid"
        if refusal is None:
            await self.app(scope, receive, send)
            return
        error = ApiError(401, refusal, code="invalid_api_key")
        await JSONResponse(error.body(), status_code=401)(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed here"}
    error = ApiError(exc.status_code, message.get(exc.status_code, str(exc.detail)))
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    error = ApiError(500, f"the server failed to answer: {type(exc).__name__}")
    return JSONResponse(error.body(), status_code=500)
