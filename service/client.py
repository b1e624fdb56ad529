"""A small typed client of the service for scripts (and the CLI): single requests and batches.

    from service.client import GigaOfficeClient
    with GigaOfficeClient("http://127.0.0.1:8000", api_key="…") as client:
        batch = client.create_batch("lines.jsonl")
        client.wait_batch(batch["id"])
        for line in client.batch_results(batch["id"]):
            ...

Retries on 429 and 503 honour the server's Retry-After (capped); other errors raise
GigaOfficeError with the service's error code and message. Only httpx is needed.

Receivers of this service's webhooks check them with `verify_webhook(secret, headers, body)`
(Standard Webhooks signatures; raises WebhookVerificationError).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson

from service.webhooks.verify import WebhookVerificationError, verify_webhook

__all__ = ["GigaOfficeClient", "GigaOfficeError", "WebhookVerificationError", "verify_webhook"]

DEFAULT_URL = "http://127.0.0.1:8000"
FINAL_REQUEST = ("completed", "failed", "cancelled", "expired")
FINAL_BATCH = ("completed", "failed", "cancelled", "expired")
_RETRY_STATUSES = (429, 502, 503, 504)
_UPLOAD_CHUNK = 1024 * 1024

JSON = dict[str, Any]


class GigaOfficeError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


def _error_of(response: httpx.Response) -> GigaOfficeError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return GigaOfficeError(
        response.status_code,
        str(error.get("code") or response.reason_phrase),
        str(error.get("message") or response.text[:300]),
        error.get("details"),
    )


def _retry_after(response: httpx.Response, attempt: int, cap: float) -> float:
    header = response.headers.get("retry-after", "")
    try:
        return min(cap, max(0.0, float(header)))
    except ValueError:
        return min(cap, 0.5 * 2**attempt)


def is_openai_line(item: Any) -> bool:
    return isinstance(item, dict) and "url" in item and "body" in item


class GigaOfficeClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 5,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._sleep = sleep

    def __enter__(self) -> GigaOfficeClient:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- transport ---------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, content: Callable[[], Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One API call with retries on 429/5xx-unavailable; `content` makes a fresh body per try."""
        for attempt in range(self._max_retries + 1):
            if content is not None:
                kwargs["content"] = content()
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == self._max_retries:
                    raise
                self._sleep(min(self._max_retry_wait, 0.5 * 2**attempt))
                continue
            if response.status_code in _RETRY_STATUSES and attempt < self._max_retries:
                self._sleep(_retry_after(response, attempt, self._max_retry_wait))
                continue
            if response.status_code >= 400:
                raise _error_of(response)
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        result: JSON = self._call(method, path, **kwargs).json()
        return result

    # --- single requests ---------------------------------------------------------------------------

    def submit(self, body: JSON) -> JSON:
        return self._json("POST", "/api/v1/requests", json=body)

    def status(self, request_id: str, wait: float = 0) -> JSON:
        return self._json("GET", f"/api/v1/requests/{request_id}", params={"wait": wait} if wait else None)

    def result(self, request_id: str) -> JSON:
        return self._json("GET", f"/api/v1/requests/{request_id}/result")

    def wait(self, request_id: str, timeout: float = 300) -> JSON:
        """Long-polls until the request is final (or `timeout` seconds pass); returns its status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(request_id, wait=min(25.0, max(0.0, deadline - time.monotonic())))
            if status["status"] in FINAL_REQUEST or time.monotonic() >= deadline:
                return status

    # --- batches -----------------------------------------------------------------------------------

    def create_batch(self, source: str | Path | list[JSON], completion_window: str = "24h") -> JSON:
        """A batch from a list of request bodies (each with custom_id) or a JSONL file. A file of
        OpenAI batch lines ({"custom_id", "method", "url", "body"}) goes through /v1 files and
        batches; native lines are streamed to /api/v1/batches. Returns the native batch view."""
        if isinstance(source, list):
            return self._json(
                "POST", "/api/v1/batches", json=source, params={"completion_window": completion_window}
            )
        path = Path(source)
        if _first_item(path) is not None and is_openai_line(_first_item(path)):
            return self.batch_status(self._create_openai_batch(path, completion_window))

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(_UPLOAD_CHUNK):
                    yield chunk

        return self._json(
            "POST",
            "/api/v1/batches",
            content=chunks,
            headers={"content-type": "application/jsonl"},
            params={"completion_window": completion_window},
        )

    def _create_openai_batch(self, path: Path, completion_window: str) -> str:
        endpoint = str(_first_item(path)["url"])
        with path.open("rb") as handle:
            uploaded = self._json(
                "POST", "/v1/files", files={"file": (path.name, handle)}, data={"purpose": "batch"}
            )
        batch = self._json(
            "POST",
            "/v1/batches",
            json={
                "input_file_id": uploaded["id"],
                "endpoint": endpoint,
                "completion_window": completion_window,
            },
        )
        return str(batch["id"])

    def batch_status(self, batch_id: str) -> JSON:
        return self._json("GET", f"/api/v1/batches/{batch_id}")

    def list_batches(self, limit: int = 20) -> JSON:
        return self._json("GET", "/api/v1/batches", params={"limit": limit})

    def cancel_batch(self, batch_id: str) -> JSON:
        return self._json("POST", f"/api/v1/batches/{batch_id}/cancel")

    def batch_results(self, batch_id: str) -> Iterator[JSON]:
        """Every line's outcome in line order, streamed (not held in memory)."""
        with self._http.stream("GET", f"/api/v1/batches/{batch_id}/results") as response:
            if response.status_code >= 400:
                response.read()
                raise _error_of(response)
            for line in response.iter_lines():
                if line:
                    yield orjson.loads(line)

    def wait_batch(
        self,
        batch_id: str,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[JSON], None] | None = None,
    ) -> JSON:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = self.batch_status(batch_id)
            if on_progress is not None:
                on_progress(batch)
            if batch["status"] in FINAL_BATCH or (deadline is not None and time.monotonic() >= deadline):
                return batch
            self._sleep(poll)


def _first_item(path: Path) -> Any:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    return orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return None
    return None
