"""A cap on request bodies, before anything reads them.

FastAPI reads and parses a route's whole body before it resolves the route's dependencies, the API
key check among them: without a cap, anyone (no key needed) could make an API process buffer and
parse a body of any size. Bodies over MAX_REQUEST_BODY_BYTES get 413 `payload_too_large`: at once
when Content-Length says so, else as soon as the streamed bytes pass the cap (nothing more is read).
multipart/form-data is left to the upload routes, whose parser spools to disk under limits of its own,
and so are the routes in STREAMED_BODY_ROUTES: they read their body themselves, after the key check,
bounded by a limit of their own (BATCH_MAX_BYTES).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
STREAMED_BODY_ROUTES = frozenset({("POST", "/api/v1/batches")})


class BodySizeLimitMiddleware:
    """Pure ASGI: it only counts the bytes of `http.request` messages as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Reads (the status polls among them) take no body: they pass without a wrapper.
        if (
            scope["type"] != "http"
            or scope["method"] in _NO_BODY
            or (scope["method"], scope["path"].rstrip("/")) in STREAMED_BODY_ROUTES
            or _is_multipart(scope)
        ):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # The app sees the client go away and stops reading; its answer is replaced.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes (MAX_REQUEST_BODY_BYTES).",
            {"limit_bytes": self.max_bytes},
            {"Connection": "close"},
        )
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _is_multipart(scope: Scope) -> bool:
    value = _header(scope, b"content-type") or b""
    return value.lower().lstrip().startswith(b"multipart/form-data")
