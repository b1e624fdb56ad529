/*
 * GigaOffice plugin: the cell functions =GIGA(), =GIGA.TABLE() and =GIGA.CLASSIFY().
 *
 * Custom functions run in the editor's own context, not in the plugin's frame, and are kept in the
 * document's library of custom functions (executeMethod SetCustomFunctions) as source text. So the
 * plugin registers a text: core.js (the pure helpers) followed by gigaCellRuntime below, which must
 * therefore use nothing but what it defines, GigaCore, and the service's address and key that the
 * panel hands to the editor's context for the session (GigaEditor.configureFunctions). The key is
 * never part of the text, so it never lands in a saved document.
 *
 * Async custom functions (an async function, or one returning a Promise) need ONLYOFFICE 9.0 or
 * later (custom functions as such: 8.1); see the README.
 */
(function (root) {
  "use strict";

  /* eslint-disable no-undef */
  function gigaCellRuntime() {
    var G = typeof globalThis !== "undefined" ? globalThis : window;
    var Core = G.GigaCore;
    var FINAL = ["completed", "failed", "cancelled", "expired"];
    // One state per editor session, kept across re-registrations: answers already final (so a
    // recalculation asks nothing), calls under way (so 500 cells with one call make one request),
    // the concurrency slots and the pause a 429's Retry-After imposes on every call.
    var state = G.GigaOfficeCells || (G.GigaOfficeCells = {
      answers: new Map(), pending: new Map(), active: 0, waiting: [], pausedUntil: 0, sent: 0, statuses: {},
    });

    function settings() {
      var s = G.GigaOfficeSettings;
      if (!s) {
        // Installed in the editor itself, the plugin shares the editor's origin and storage.
        try { s = JSON.parse(G.localStorage.getItem("gigaoffice.settings") || "null"); } catch (e) { s = null; }
      }
      return s || {};
    }

    function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

    async function acquire() {
      var limit = settings().maxConcurrent || 6;
      while (state.active >= limit) await new Promise(function (resolve) { state.waiting.push(resolve); });
      state.active++;
    }

    function release() {
      state.active--;
      var next = state.waiting.shift();
      if (next) next();
    }

    async function http(method, path, body, headers, timeoutMs) {
      var s = settings();
      if (!s.serviceUrl) return { status: -1 };
      var h = Object.assign({ Accept: "application/json" }, headers || {});
      if (body !== undefined) h["Content-Type"] = "application/json";
      if (s.apiKey) h.Authorization = "Bearer " + s.apiKey;
      var controller = new AbortController();
      var timer = setTimeout(function () { controller.abort(); }, timeoutMs || 40000);
      try {
        var response = await fetch(s.serviceUrl.replace(/\/+$/, "") + path, {
          method: method, headers: h, signal: controller.signal, cache: "no-store",
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        var parsed = null;
        try { parsed = await response.json(); } catch (e) { parsed = null; }
        return { status: response.status, body: parsed, retryAfter: response.headers.get("Retry-After") };
      } catch (e) {
        return { status: 0, body: null, retryAfter: null };
      } finally {
        clearTimeout(timer);
      }
    }

    /** An HTTP call that waits out a pause and retries on 429/503 (honouring Retry-After), holding
     * one of the limited slots only while it is on the wire. */
    async function polite(method, path, body, headers, timeoutMs) {
      var answer;
      for (var attempt = 0; attempt < 6; attempt++) {
        var pause = state.pausedUntil - Date.now();
        if (pause > 0) await sleep(pause);
        await acquire();
        try {
          if (method === "POST" && path === "/api/v1/requests") state.sent++;
          answer = await http(method, path, body, headers, timeoutMs);
          state.statuses[answer.status] = (state.statuses[answer.status] || 0) + 1; // what benches read
        } finally {
          release();
        }
        if (answer.status !== 429 && answer.status !== 503) return answer;
        var wait = Core.retrySeconds(answer.retryAfter);
        state.pausedUntil = Math.max(state.pausedUntil, Date.now() + 1000 * (wait === null ? 5 : wait));
      }
      return answer;
    }

    /** One spreadsheet request through the interactive lane: submit with `Prefer: wait`, then
     * long-poll its status (no tight polling), then the result. Returns {final, value}. */
    async function runRequest(key, question, rows, address) {
      var body = { kind: "spreadsheet", query_text: String(question) };
      if (rows) {
        body.input_data = rows;
        body.input_range = address;
      }
      var submitted = await polite("POST", "/api/v1/requests", body, { "Idempotency-Key": key, Prefer: "wait=25" }, 40000);
      if (submitted.status === -1) return { final: false, value: "#GIGA: open the GigaOffice panel to connect" };
      if (submitted.status >= 300 || submitted.status === 0) {
        return { final: false, value: Core.cellError(submitted.status, submitted.body, submitted.retryAfter) };
      }
      var status = submitted.body;
      for (var round = 0; FINAL.indexOf(status.status) < 0 && round < 40; round++) {
        var polled = await polite("GET", "/api/v1/requests/" + status.id + "?wait=25", undefined, {}, 40000);
        if (polled.status !== 200) return { final: false, value: Core.cellError(polled.status, polled.body, polled.retryAfter) };
        status = polled.body;
      }
      if (status.status !== "completed") {
        // A failed request is an answer too (the same call fails the same way); the rest may pass later.
        var failed = status.status === "failed";
        var reason = status.error ? status.error.code : status.status;
        return { final: failed, value: "#GIGA: " + reason + (status.error && status.error.message ? " — " + status.error.message : "") };
      }
      var result = await polite("GET", "/api/v1/requests/" + status.id + "/result", undefined, {}, 20000);
      if (result.status !== 200) return { final: false, value: Core.cellError(result.status, result.body, result.retryAfter) };
      return { final: true, value: result.body.result };
    }

    /** The same call (function, arguments, cell data) is asked once: shared while under way, kept
     * once final. Its hash is the Idempotency-Key, so even another session re-bills nothing. */
    async function once(fn, question, rows, address, perform) {
      var key = Core.callKey(fn, question, rows, address);
      if (state.answers.has(key)) return state.answers.get(key);
      if (state.pending.has(key)) return state.pending.get(key);
      var promise = (async function () {
        var outcome = await perform(key);
        if (outcome.final) state.answers.set(key, outcome.value);
        return outcome.value;
      })();
      state.pending.set(key, promise);
      try {
        return await promise;
      } finally {
        state.pending.delete(key);
      }
    }

    function rangeAddress(ctx, index, rows) {
      var arg = ctx && ctx.args && ctx.args[index];
      var parsed = arg && arg.address ? Core.parseRange(arg.address) : null;
      if (parsed) return Core.formatRange(parsed);
      var width = rows.reduce(function (m, r) { return Math.max(m, r.length); }, 1);
      return "A1:" + Core.columnName(width) + Math.max(rows.length, 1);
    }

    function cells(values) {
      return values.map(function (row) { return row.map(function (v) { return v === null || v === undefined ? "" : v; }); });
    }

    function textOf(result) {
      if (typeof result === "string") return result;
      return Core.answerText(result) || (result && result.chart_type ? "chart: " + result.chart_type : "");
    }

    /**
     * Asks GigaOffice AI a question about a range; answers text, or a table that spills.
     * @customfunction
     * @param {string} question What to find out or do.
     * @param {any[][]} [range] The cells to look at (the header row included).
     * @returns {any} The answer.
     */
    async function GIGA(question, range) {
      var rows = range === undefined || range === null || range === "" ? null : Core.toRows(range);
      var address = rows ? rangeAddress(this, 1, rows) : null;
      var result = await once("GIGA", question, rows, address, function (key) { return runRequest(key, question, rows, address); });
      if (result && typeof result === "object" && Core.answerKind(result) === "table") return cells(result.values);
      return textOf(result);
    }

    /**
     * Asks GigaOffice AI for a table made from a range; always answers a table that spills.
     * @customfunction
     * @param {string} question What table to make.
     * @param {any[][]} range The cells to start from (the header row included).
     * @returns {any[][]} The table.
     */
    async function GIGA_TABLE(question, range) {
      var rows = Core.toRows(range);
      var address = rangeAddress(this, 1, rows);
      var result = await once("GIGA.TABLE", question, rows, address, function (key) { return runRequest(key, question, rows, address); });
      if (result && typeof result === "object" && Core.answerKind(result) === "table") return cells(result.values);
      return [[textOf(result)]];
    }

    /**
     * The category GigaOffice AI would file a question under.
     * @customfunction
     * @param {string} question The question.
     * @returns {string} The category.
     */
    async function GIGA_CLASSIFY(question) {
      return once("GIGA.CLASSIFY", question, null, null, async function () {
        var answer = await polite("POST", "/api/v1/classify", { query_text: String(question) }, {}, 20000);
        if (answer.status === -1) return { final: false, value: "#GIGA: open the GigaOffice panel to connect" };
        if (answer.status !== 200) return { final: false, value: Core.cellError(answer.status, answer.body, answer.retryAfter) };
        return { final: true, value: answer.body.category };
      });
    }

    // Spreadsheet names may hold a dot (like STDEV.S); JavaScript names may not.
    Object.defineProperty(GIGA_TABLE, "name", { value: "GIGA.TABLE" });
    Object.defineProperty(GIGA_CLASSIFY, "name", { value: "GIGA.CLASSIFY" });
    Api.AddCustomFunction(GIGA);
    Api.AddCustomFunction(GIGA_TABLE);
    Api.AddCustomFunction(GIGA_CLASSIFY);
  }
  /* eslint-enable no-undef */

  // A fixed guid: registering again replaces our entry in the document's library, never adds one.
  const FUNCTIONS_GUID = "7c1a5e0e4b2d4f6a9d3e8b1c2f4a6d80";

  /** The library entry: core.js, then the runtime, as one self-contained text. */
  async function libraryEntry(coreUrl) {
    const response = await fetch(coreUrl || "scripts/core.js", { cache: "no-cache" });
    const core = await response.text();
    const value = "(function () {\n" + core + "\n(" + gigaCellRuntime.toString() + ")();\n})();\n";
    return { guid: FUNCTIONS_GUID, name: "GIGA", value: value };
  }

  root.GigaFunctions = { libraryEntry: libraryEntry, runtime: gigaCellRuntime, guid: FUNCTIONS_GUID };
})(typeof globalThis !== "undefined" ? globalThis : this);
