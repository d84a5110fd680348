"""Errors as OpenAI sends them: an HTTP status and `{"error": {message, type, param, code}}`.

    raise ApiError(400, "messages: at least one message is needed", param="messages")

Every refusal of the API is an ApiError; `create_app` turns it (and Starlette's own 404 and
405) into that JSON, so no client ever sees a traceback.
"""

from __future__ import annotations

from typing import Any

# OpenAI's error `type` for each status the server answers with.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }
