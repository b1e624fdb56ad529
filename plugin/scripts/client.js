/*
 * GigaOffice plugin: the service's HTTP API as the panel uses it. Every call has a deadline (nothing
 * may hang forever), sends the key as a header (never in a URL, where logs would keep it), and
 * turns a failure into an ApiError carrying a sentence for the user.
 */
(function (root) {
  "use strict";
  const Core = root.GigaCore;

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      super(Core.errorText(status, body, retryAfter));
      this.status = status;
      this.body = body;
      this.retryAfter = retryAfter;
      this.code = body && body.error ? body.error.code : null;
    }
  }

  class GigaClient {
    /** settings(): {serviceUrl, apiKey}, read on every call so a changed setting applies at once. */
    constructor(settings, { timeoutMs = 20000 } = {}) {
      this.settings = settings;
      this.timeoutMs = timeoutMs;
    }

    url(path) {
      const base = (this.settings().serviceUrl || "").trim().replace(/\/+$/, "");
      return base + path;
    }

    headers(extra) {
      const headers = { Accept: "application/json", ...extra };
      const key = (this.settings().apiKey || "").trim();
      if (key) headers.Authorization = "Bearer " + key;
      return headers;
    }

    async call(method, path, { body, headers, timeoutMs, signal } = {}) {
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), timeoutMs || this.timeoutMs);
      const onAbort = () => deadline.abort();
      if (signal) signal.addEventListener("abort", onAbort);
      let response;
      try {
        response = await fetch(this.url(path), {
          method,
          headers: this.headers(body === undefined ? headers : { "Content-Type": "application/json", ...headers }),
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: deadline.signal,
          cache: "no-store",
        });
      } catch (err) {
        throw new ApiError(0, null, null);
      } finally {
        clearTimeout(timer);
        if (signal) signal.removeEventListener("abort", onAbort);
      }
      let parsed = null;
      try {
        parsed = await response.json();
      } catch (err) {
        parsed = null;
      }
      if (!response.ok) throw new ApiError(response.status, parsed, response.headers.get("Retry-After"));
      return { status: response.status, body: parsed, headers: response.headers };
    }

    /** "ok" | "down" (unreachable or not ready) | "key" (reachable, key refused): readiness is open,
     * so a second, keyed call tells a bad key from a service that is down. */
    async check() {
      try {
        await this.call("GET", "/api/v1/health/ready", { timeoutMs: 8000 });
      } catch (err) {
        return { state: "down", error: err };
      }
      try {
        await this.call("GET", "/api/v1/usage", { timeoutMs: 8000 });
      } catch (err) {
        return { state: err.status === 401 || err.status === 403 ? "key" : "down", error: err };
      }
      return { state: "ok" };
    }

    categories() {
      return this.call("GET", "/api/v1/categories").then((r) => r.body);
    }

    presets() {
      return this.call("GET", "/api/v1/presets").then((r) => r.body);
    }

    submit(body, idempotencyKey) {
      return this.call("POST", "/api/v1/requests", {
        body,
        headers: idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {},
      }).then((r) => r.body);
    }

    status(id, wait) {
      const query = wait ? `?wait=${wait}` : "";
      return this.call("GET", `/api/v1/requests/${id}${query}`, { timeoutMs: (wait || 0) * 1000 + this.timeoutMs }).then((r) => r.body);
    }

    result(id) {
      return this.call("GET", `/api/v1/requests/${id}/result`).then((r) => r.body);
    }

    cancel(id) {
      return this.call("POST", `/api/v1/requests/${id}/cancel`).then((r) => r.body);
    }

    /** Follows a request's status stream until its final status, calling onStatus for each one.
     * EventSource cannot send the key as a header, so the stream is read through fetch. A stream
     * silent for idleMs (keep-alives come every 15 s) is dropped and read again from where it was. */
    async follow(id, onStatus, { signal, idleMs = 45000 } = {}) {
      let lastEventId = null;
      for (let attempt = 0; attempt < 20; attempt++) {
        if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
        const controller = new AbortController();
        const stop = () => controller.abort();
        if (signal) signal.addEventListener("abort", stop);
        let idle = setTimeout(stop, idleMs);
        try {
          const headers = this.headers({ Accept: "text/event-stream" });
          if (lastEventId) headers["Last-Event-ID"] = lastEventId;
          let response;
          try {
            response = await fetch(this.url(`/api/v1/requests/${id}/events`), { headers, signal: controller.signal, cache: "no-store" });
          } catch (err) {
            if (signal && signal.aborted) throw err;
            throw new ApiError(0, null, null);
          }
          if (!response.ok) {
            let body = null;
            try { body = await response.json(); } catch (err) { body = null; }
            throw new ApiError(response.status, body, response.headers.get("Retry-After"));
          }
          const reader = response.body.getReader();
          const decoder = new TextDecoder();
          let buffer = "";
          for (;;) {
            let chunk;
            try {
              chunk = await reader.read();
            } catch (err) {
              break; // dropped (idle, or the network): read again below, unless asked to stop
            }
            if (chunk.done) break;
            clearTimeout(idle);
            idle = setTimeout(stop, idleMs);
            buffer += decoder.decode(chunk.value, { stream: true });
            const [events, rest] = Core.parseSse(buffer);
            buffer = rest;
            for (const event of events) {
              if (event.id) lastEventId = event.id;
              if (event.event !== "status") continue;
              const status = JSON.parse(event.data);
              onStatus(status);
              if (["completed", "failed", "cancelled", "expired"].includes(status.status)) return status;
            }
          }
        } finally {
          clearTimeout(idle);
          if (signal) signal.removeEventListener("abort", stop);
        }
        if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
        // The stream ended without a final status (SSE_MAX_SECONDS, a proxy): ask once, then resume.
        const now = await this.status(id);
        onStatus(now);
        if (["completed", "failed", "cancelled", "expired"].includes(now.status)) return now;
      }
      throw new ApiError(503, { error: { code: "stream_lost", message: "the status stream kept breaking" } }, null);
    }
  }

  root.GigaClient = GigaClient;
  root.GigaApiError = ApiError;
})(typeof globalThis !== "undefined" ? globalThis : this);
