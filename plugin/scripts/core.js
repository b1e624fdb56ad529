/*
 * GigaOffice plugin: the pure part (no DOM, no editor, no network), shared by the panel, the cell
 * functions and the node unit tests (plugin/tests/). Runs as a plain script (sets globalThis.GigaCore)
 * and as a CommonJS module. It is also pasted, as text, in front of the cell functions' code, which
 * runs in the editor's own context where nothing of the plugin's is loaded.
 */
(function (root) {
  "use strict";

  // --- A1 references -----------------------------------------------------------------------------

  function columnIndex(letters) {
    let index = 0;
    for (const ch of letters.toUpperCase()) index = index * 26 + (ch.charCodeAt(0) - 64);
    return index;
  }

  function columnName(index) {
    let name = "";
    while (index > 0) {
      const rest = (index - 1) % 26;
      name = String.fromCharCode(65 + rest) + name;
      index = Math.floor((index - 1) / 26);
    }
    return name;
  }

  const CELL = /^\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$/;

  /** "Sheet1!$A$1:C10" → {sheet, r1, c1, r2, c2} (1-based, ordered); null when it is not a range. */
  function parseRange(text) {
    if (typeof text !== "string") return null;
    let ref = text.trim();
    let sheet = null;
    const bang = ref.lastIndexOf("!");
    if (bang >= 0) {
      sheet = ref.slice(0, bang).replace(/^'(.*)'$/, "$1");
      ref = ref.slice(bang + 1);
    }
    const [first, second = first, extra] = ref.split(":");
    if (extra !== undefined) return null;
    const a = CELL.exec(first);
    const b = CELL.exec(second);
    if (!a || !b) return null;
    const r1 = Number(a[2]), c1 = columnIndex(a[1]), r2 = Number(b[2]), c2 = columnIndex(b[1]);
    return { sheet, r1: Math.min(r1, r2), c1: Math.min(c1, c2), r2: Math.max(r1, r2), c2: Math.max(c1, c2) };
  }

  /** {r1, c1, r2, c2} → "A1:C10" ("A1" for one cell). */
  function formatRange(box) {
    const first = columnName(box.c1) + box.r1;
    const last = columnName(box.c2) + box.r2;
    return first === last ? first : first + ":" + last;
  }

  function boxOf(topRow, leftColumn, rows, columns) {
    return { r1: topRow, c1: leftColumn, r2: topRow + Math.max(rows, 1) - 1, c2: leftColumn + Math.max(columns, 1) - 1 };
  }

  // --- cells ↔ rows ------------------------------------------------------------------------------

  const NUMBER = /^[+-]?(\d+([.,]\d+)?|[.,]\d+)([eE][+-]?\d+)?$/;

  /** One cell as the API wants it: empty → null, numbers as numbers (editors hand values over as
   * text, with a decimal comma in Russian locales), everything else as it is. */
  function cellValue(value) {
    if (value === undefined || value === null) return null;
    if (typeof value === "number") return Number.isFinite(value) ? value : null;
    if (typeof value === "boolean") return value;
    const text = String(value);
    if (text.trim() === "") return null;
    const trimmed = text.trim();
    if (NUMBER.test(trimmed)) {
      const number = Number(trimmed.replace(",", "."));
      // Beyond 2^53 a number would lose digits (an account or card number): keep the text.
      if (Number.isFinite(number) && Math.abs(number) <= Number.MAX_SAFE_INTEGER) return number;
    }
    return text;
  }

  /** What an editor's GetValue returns for a range (a scalar, a row, or rows) → a rectangle of
   * API cells, the header row kept, rows padded to one width. */
  function toRows(values) {
    let rows;
    if (!Array.isArray(values)) rows = [[values]];
    else if (values.length && !values.some(Array.isArray)) rows = [values];
    else rows = values.map((row) => (Array.isArray(row) ? row : [row]));
    const width = rows.reduce((max, row) => Math.max(max, row.length), 0);
    return rows.map((row) => {
      const out = row.map(cellValue);
      while (out.length < width) out.push(null);
      return out;
    });
  }

  /** Rows with a value somewhere: trailing empty rows and columns dropped (a whole-column
   * selection would otherwise send a million nulls). */
  function trimEmpty(rows) {
    let height = rows.length;
    while (height > 0 && rows[height - 1].every((cell) => cell === null)) height--;
    let width = 0;
    for (let r = 0; r < height; r++) {
      for (let c = rows[r].length - 1; c >= width; c--) {
        if (rows[r][c] !== null) { width = c + 1; break; }
      }
    }
    return rows.slice(0, height).map((row) => row.slice(0, width));
  }

  function isEmptyCell(value) {
    return value === null || value === undefined || (typeof value === "string" && value.trim() === "");
  }

  /** How many cells of a rectangle already hold something (those would be overwritten). */
  function occupied(rows) {
    let count = 0;
    for (const row of toRowsLoose(rows)) for (const cell of row) if (!isEmptyCell(cell)) count++;
    return count;
  }

  function toRowsLoose(values) {
    if (!Array.isArray(values)) return [[values]];
    if (values.length && !values.some(Array.isArray)) return [values];
    return values;
  }

  // --- where an answer goes ------------------------------------------------------------------------

  /** The rectangle a 2-D answer is written to: its output_range's top-left corner when it gives one,
   * else beside the selection (one empty column between). */
  function placement(values, outputRange, selection) {
    const rows = values.length;
    const columns = values.reduce((max, row) => Math.max(max, row.length), 0);
    const target = parseRange(outputRange || "");
    if (target) return formatRange(boxOf(target.r1, target.c1, rows, columns));
    const sel = parseRange(selection || "") || { r1: 1, c1: 1, r2: 1, c2: 1 };
    return formatRange(boxOf(sel.r1, sel.c2 + 2, rows, columns));
  }

  // --- what kind of answer -------------------------------------------------------------------------

  function answerKind(result) {
    if (!result || typeof result !== "object") return "text";
    if (typeof result.chart_type === "string" && Array.isArray(result.series)) return "chart";
    if (Array.isArray(result.source_columns)) return "histogram";
    if (typeof result.score === "number" && result.problem) return "process";
    if (Array.isArray(result.values) && result.values.length) return "table";
    if (Array.isArray(result.message) || (result.message && result.message.content)) return "chat";
    return "text";
  }

  /** An answer as text: its `text`, or a process analysis laid out line by line (`t` translates). */
  function answerText(result, t) {
    t = t || fill;
    if (!result || typeof result !== "object") return result === undefined || result === null ? "" : String(result);
    if (answerKind(result) === "process") {
      const steps = (result.implementation || []).map((step, i) => `${i + 1}. ${typeof step === "string" ? step : step.step || step.description || JSON.stringify(step)}`);
      const solution = result.solution || {};
      return [
        t("Score: {score}/10", { score: result.score }),
        t("Problem: {problem}", { problem: result.problem }),
        t("Solution: {solution}", { solution: (solution.description || "") + (solution.tools ? " (" + solution.tools.join(", ") + ")" : "") }),
        result.savings ? t("Savings: {hours} h/month", { hours: result.savings.hours_per_month }) : "",
        steps.length ? t("Steps:") + "\n" + steps.join("\n") : "",
      ].filter(Boolean).join("\n");
    }
    if (result.message && typeof result.message.content === "string") return result.message.content;
    return typeof result.text === "string" ? result.text : "";
  }

  // ONLYOFFICE's AddChart names for the answer's chart types.
  const CHART_TYPES = {
    line: "lineNormal",
    bar: "horizontalBar",
    column: "bar",
    pie: "pie",
    area: "area",
    scatter: "scatter",
    doughnut: "doughnut",
    radar: "radar",
  };

  /** A chart answer → what AddChart needs: one data range (categories and series side by side,
   * with the header row above them when the selection has one), the editor's chart type, where
   * to put it. Series given as numbers rather than ranges are written beside the selection first
   * (`write`), and the chart is built from there. */
  function chartPlan(result, selection) {
    const sel = parseRange(selection || "") || { r1: 1, c1: 1, r2: 1, c2: 1 };
    const boxes = [];
    let write = null;
    const inline = result.series.filter((s) => !s.values_range && Array.isArray(s.values));
    if (inline.length) {
      const length = Math.max(...inline.map((s) => s.values.length));
      const rows = [["", ...inline.map((s) => s.name || "")]];
      for (let i = 0; i < length; i++) rows.push([String(i + 1), ...inline.map((s) => (s.values[i] === undefined ? null : s.values[i]))]);
      const range = placement(rows, null, selection);
      write = { range, values: rows };
      boxes.push(parseRange(range));
    } else {
      for (const ref of [result.categories_range, ...result.series.map((s) => s.values_range)]) {
        const box = parseRange(ref || "");
        if (box) boxes.push(box);
      }
    }
    if (!boxes.length) boxes.push(sel);
    const box = {
      r1: Math.min(...boxes.map((b) => b.r1)),
      c1: Math.min(...boxes.map((b) => b.c1)),
      r2: Math.max(...boxes.map((b) => b.r2)),
      c2: Math.max(...boxes.map((b) => b.c2)),
    };
    // The header row names the series: take it in when the data starts just below the selection's top.
    if (!write && box.r1 > sel.r1 && box.r1 - 1 >= sel.r1) box.r1 -= 1;
    return {
      dataRange: formatRange(box),
      absoluteRange: "$" + columnName(box.c1) + "$" + box.r1 + ":$" + columnName(box.c2) + "$" + box.r2,
      type: CHART_TYPES[result.chart_type] || "bar",
      title: result.title || "",
      legend: result.legend !== false,
      write,
      // Top-left corner of the chart: two columns right of everything used so far.
      anchor: { column: Math.max(box.c2, sel.c2) + 1, row: sel.r1 - 1 },
    };
  }

  // --- errors in plain words -----------------------------------------------------------------------

  function retrySeconds(retryAfter) {
    if (retryAfter === undefined || retryAfter === null || retryAfter === "") return null;
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
    const at = Date.parse(retryAfter);
    return Number.isFinite(at) ? Math.max(0, Math.ceil((at - Date.now()) / 1000)) : null;
  }

  /** Fills {name} placeholders: the default translation (none); the panel passes its own. */
  function fill(text, values) {
    let out = text;
    for (const name of Object.keys(values || {})) out = out.split("{" + name + "}").join(String(values[name]));
    return out;
  }

  /** An HTTP failure (status 0: the service could not be reached) → a sentence for a person.
   * `t(template, values)` translates; the templates are the keys of translations/*.json. */
  function errorText(status, body, retryAfter, t) {
    t = t || fill;
    const error = (body && body.error) || {};
    const wait = retrySeconds(retryAfter);
    if (status === 0) return t("The service cannot be reached: check its address, or whether it is running.");
    if (status === 401) return t("The API key was refused: check the key in the settings.");
    if (status === 403) return t("This API key may not do that.");
    if (status === 429) return wait === null ? t("Request limit reached. Retry in a minute.") : t("Request limit reached. Retry in {seconds} s.", { seconds: wait });
    if (status === 503) return wait === null ? t("The service is busy or partly down. Retry shortly.") : t("The service is busy or partly down. Retry in {seconds} s.", { seconds: wait });
    if (status === 404) return t("Not found: the request is gone, or belongs to another key.");
    if (status === 413) return t("The selection is too large to send.");
    if (status >= 500) return t("The service failed ({status} {code}).", { status, code: error.code || "" });
    return t("The service refused the request ({status} {code}): {message}", { status, code: error.code || "", message: error.message || "" });
  }

  /** A request that ended badly → one line: its status, error code and message. */
  function failureText(status, t) {
    t = t || fill;
    const error = status && status.error;
    if (status && status.status === "cancelled") return t("Cancelled.");
    if (status && status.status === "expired") return t("The request expired before it was processed.");
    if (!error) return t("The request ended as {status}.", { status: status ? status.status : "?" });
    return t("The request failed ({code}): {message}", { code: error.code, message: error.message || "" });
  }

  /** The same for a cell: `#GIGA: …`, short enough to read in a column. */
  function cellError(status, body, retryAfter) {
    const wait = retrySeconds(retryAfter);
    if (status === 429) return `#GIGA: rate limited, retry in ${wait === null ? 60 : wait} s`;
    if (status === 401 || status === 403) return "#GIGA: API key refused";
    if (status === 0) return "#GIGA: service unreachable";
    if (status === 503) return `#GIGA: service busy${wait === null ? "" : ", retry in " + wait + " s"}`;
    const error = (body && body.error) || {};
    return `#GIGA: ${error.code || "error " + status}${error.message ? " — " + error.message : ""}`.slice(0, 250);
  }

  // --- keys of cell calls --------------------------------------------------------------------------

  /** A stable hash (FNV-1a, 2 × 32 bits → 16 hex digits) of any JSON value: the same function,
   * arguments and cell data always give the same key, whatever the editor or the session. */
  function hashKey(value) {
    const text = JSON.stringify(value);
    let h1 = 0x811c9dc5, h2 = 0x01000193 ^ 0x5bd1e995;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ code, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ code, 0x5bd1e995) >>> 0;
      h2 = (h2 ^ (h2 >>> 13)) >>> 0;
    }
    return h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0");
  }

  /** The key of a cell call: its function and arguments (the range's address among them: the same
   * key with another body is refused by the service) and the cell data. */
  function callKey(fn, question, rows, address) {
    return "giga-" + fn.toLowerCase().replace(/[^a-z]/g, "") + "-" + hashKey([fn, question, address || null, rows || null]);
  }

  // --- server-sent events over fetch ---------------------------------------------------------------

  /** Splits an SSE text buffer into complete events; returns [events, the unfinished rest]. */
  function parseSse(buffer) {
    const events = [];
    const blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
    const rest = blocks.pop();
    for (const block of blocks) {
      const event = { event: "message", data: "", id: null };
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") event.id = value;
      }
      if (data.length) {
        event.data = data.join("\n");
        events.push(event);
      }
    }
    return [events, rest];
  }

  const GigaCore = {
    columnIndex, columnName, parseRange, formatRange, boxOf,
    cellValue, toRows, trimEmpty, isEmptyCell, occupied,
    placement, answerKind, answerText, chartPlan, CHART_TYPES,
    retrySeconds, fill, errorText, failureText, cellError,
    hashKey, callKey, parseSse,
  };
  if (typeof module === "object" && module.exports) module.exports = GigaCore;
  root.GigaCore = GigaCore;
})(typeof globalThis !== "undefined" ? globalThis : this);
