"""OpenAI's error shape, {"error": {"message", "type", "param", "code"}}, for the /v1 surface: its
SDKs read `type` (and raise by HTTP status); `code` keeps our own names."""

from __future__ import annotations

from typing import Any

_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "invalid_request_error",
                429: "rate_limit_error", 504: "timeout"}  # fmt: skip


def openai_error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": openai_error_type(status), "param": param, "code": code}}
