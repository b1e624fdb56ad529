// Unit tests of the plugin's pure part (scripts/core.js): `node --test plugin/tests/`.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const Core = require("../scripts/core.js");

test("column letters and numbers convert both ways", () => {
  for (const [letters, index] of [["A", 1], ["Z", 26], ["AA", 27], ["AZ", 52], ["ZZ", 702], ["AAA", 703], ["XFD", 16384]]) {
    assert.equal(Core.columnIndex(letters), index);
    assert.equal(Core.columnName(index), letters);
  }
});

test("ranges parse with sheets, dollars and reversed corners, and format back", () => {
  assert.deepEqual(Core.parseRange("'My sheet'!$C$10:A1"), { sheet: "My sheet", r1: 1, c1: 1, r2: 10, c2: 3 });
  assert.deepEqual(Core.parseRange("b2"), { sheet: null, r1: 2, c1: 2, r2: 2, c2: 2 });
  assert.equal(Core.parseRange("A1:B2:C3"), null);
  assert.equal(Core.parseRange("hello"), null);
  assert.equal(Core.formatRange({ r1: 1, c1: 1, r2: 10, c2: 3 }), "A1:C10");
  assert.equal(Core.formatRange({ r1: 4, c1: 28, r2: 4, c2: 28 }), "AB4");
});

test("cells become API values: empty → null, numbers as numbers, text kept", () => {
  assert.equal(Core.cellValue(""), null);
  assert.equal(Core.cellValue("   "), null);
  assert.equal(Core.cellValue(undefined), null);
  assert.equal(Core.cellValue("120"), 120);
  assert.equal(Core.cellValue("-1.5"), -1.5);
  assert.equal(Core.cellValue("3,25"), 3.25); // a Russian decimal comma
  assert.equal(Core.cellValue("1e3"), 1000);
  assert.equal(Core.cellValue("12345678901234567890"), "12345678901234567890"); // would lose digits
  assert.equal(Core.cellValue("Товар A"), "Товар A");
  assert.equal(Core.cellValue(" 7 "), 7);
  assert.equal(Core.cellValue(true), true);
  assert.equal(Core.cellValue(Number.NaN), null);
});

test("a range's values become rows: header kept, scalars and single rows wrapped, rows padded", () => {
  assert.deepEqual(Core.toRows([["Товар", "Янв"], ["A", "100"], ["B", ""]]), [["Товар", "Янв"], ["A", 100], ["B", null]]);
  assert.deepEqual(Core.toRows("5"), [[5]]);
  assert.deepEqual(Core.toRows(["a", "1"]), [["a", 1]]);
  assert.deepEqual(Core.toRows([["a"], ["b", "2"]]), [["a", null], ["b", 2]]);
});

test("trailing empty rows and columns are dropped, inner ones kept", () => {
  const rows = [["a", null, null], [null, null, null], ["b", 2, null], [null, null, null]];
  assert.deepEqual(Core.trimEmpty(rows), [["a", null], [null, null], ["b", 2]]);
  assert.deepEqual(Core.trimEmpty([[null]]), []);
});

test("an answer goes to its output_range's corner, else beside the selection", () => {
  const values = [["x", "y"], [1, 2], [3, 4]];
  assert.equal(Core.placement(values, "E1", "A1:C3"), "E1:F3");
  assert.equal(Core.placement(values, "Sheet1!H5:Z99", "A1:C3"), "H5:I7");
  assert.equal(Core.placement(values, null, "A1:C3"), "E1:F3");
  assert.equal(Core.placement(values, null, "B4:D10"), "F4:G6");
  assert.equal(Core.placement([["only"]], undefined, "A1"), "C1");
  assert.equal(Core.placement([[1, 2, 3]], null, null), "C1:E1");
});

test("occupied counts the cells that would be overwritten", () => {
  assert.equal(Core.occupied([["", null], [" ", "x"]]), 1);
  assert.equal(Core.occupied([[0, false]]), 2);
  assert.equal(Core.occupied(""), 0);
  assert.equal(Core.occupied(["a", "b"]), 2);
});

test("answers are told apart by their shape", () => {
  assert.equal(Core.answerKind({ values: [[1]] }), "table");
  assert.equal(Core.answerKind({ values: [], text: "hi" }), "text");
  assert.equal(Core.answerKind({ chart_type: "pie", series: [{ values_range: "B2:B3" }] }), "chart");
  assert.equal(Core.answerKind({ source_columns: ["B"], bins: 5 }), "histogram");
  assert.equal(Core.answerKind({ score: 7, problem: "p", solution: { description: "d", tools: ["n8n"] } }), "process");
  assert.match(Core.answerText({ score: 7, problem: "manual typing", solution: { description: "OCR", tools: ["n8n"] } }), /Score: 7\/10[\s\S]*manual typing[\s\S]*n8n/);
});

test("a chart plan spans categories and series with their header row, in the editor's type names", () => {
  const plan = Core.chartPlan(
    { chart_type: "pie", title: "Share", series: [{ name: "Янв", values_range: "B2:B3" }], categories_range: "A2:A3" },
    "A1:C3",
  );
  assert.equal(plan.dataRange, "A1:B3");
  assert.equal(plan.absoluteRange, "$A$1:$B$3");
  assert.equal(plan.type, "pie");
  assert.equal(plan.title, "Share");
  assert.equal(plan.write, null);
  assert.equal(Core.chartPlan({ chart_type: "column", series: [{ values_range: "C1:C9" }] }, "A1:C9").type, "bar");
  assert.equal(Core.chartPlan({ chart_type: "line", series: [{ values_range: "C1:C9" }] }, "A1:C9").type, "lineNormal");
});

test("a chart of inline numbers writes them beside the selection first", () => {
  const plan = Core.chartPlan({ chart_type: "bar", series: [{ name: "s", values: [1, 2, 3] }] }, "A1:B4");
  assert.equal(plan.write.range, "D1:E4");
  assert.deepEqual(plan.write.values, [["", "s"], ["1", 1], ["2", 2], ["3", 3]]);
  assert.equal(plan.dataRange, "D1:E4");
  assert.equal(plan.type, "horizontalBar");
});

test("errors read as plain words: key, limit with its wait, busy, down, refused", () => {
  assert.match(Core.errorText(401, { error: { code: "invalid_api_key" } }, null), /API key was refused/);
  assert.match(Core.errorText(403, null, null), /may not/);
  assert.equal(Core.errorText(429, null, "20"), "Request limit reached. Retry in 20 s.");
  assert.equal(Core.errorText(429, null, null), "Request limit reached. Retry in a minute.");
  assert.equal(Core.errorText(503, null, "5"), "The service is busy or partly down. Retry in 5 s.");
  assert.match(Core.errorText(0, null, null), /cannot be reached/);
  assert.equal(
    Core.errorText(422, { error: { code: "validation_error", message: "input_range: bad" } }, null),
    "The service refused the request (422 validation_error): input_range: bad",
  );
  const ru = (text, values) => Core.fill({ "Request limit reached. Retry in {seconds} s.": "Лимит. Через {seconds} с." }[text] || text, values);
  assert.equal(Core.errorText(429, null, "7", ru), "Лимит. Через 7 с.");
});

test("a failed request names its code and message; cells get #GIGA text", () => {
  assert.equal(Core.failureText({ status: "failed", error: { code: "llm_error", message: "timeout" } }), "The request failed (llm_error): timeout");
  assert.equal(Core.failureText({ status: "cancelled" }), "Cancelled.");
  assert.equal(Core.cellError(429, null, "20"), "#GIGA: rate limited, retry in 20 s");
  assert.equal(Core.cellError(401, null, null), "#GIGA: API key refused");
  assert.equal(Core.cellError(0, null, null), "#GIGA: service unreachable");
  assert.equal(Core.cellError(422, { error: { code: "validation_error", message: "m" } }, null), "#GIGA: validation_error — m");
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(Core.retrySeconds("12"), 12);
  assert.equal(Core.retrySeconds(null), null);
  const soon = new Date(Date.now() + 30000).toUTCString();
  const seconds = Core.retrySeconds(soon);
  assert.ok(seconds >= 28 && seconds <= 31, String(seconds));
});

test("a call's key depends on function, question and data, and on nothing else", () => {
  const rows = [["a", 1]];
  const key = Core.callKey("GIGA.TABLE", "sum", rows);
  assert.match(key, /^giga-gigatable-[0-9a-f]{16}$/);
  assert.equal(Core.callKey("GIGA.TABLE", "sum", [["a", 1]]), key);
  assert.notEqual(Core.callKey("GIGA", "sum", rows), key);
  assert.notEqual(Core.callKey("GIGA.TABLE", "sum ", rows), key);
  assert.notEqual(Core.callKey("GIGA.TABLE", "sum", [["a", 2]]), key);
  assert.equal(Core.callKey("GIGA.TABLE", "sum", rows, "A1:B1"), Core.callKey("GIGA.TABLE", "sum", rows, "A1:B1"));
  assert.notEqual(Core.callKey("GIGA.TABLE", "sum", rows, "C1:D1"), Core.callKey("GIGA.TABLE", "sum", rows, "A1:B1"));
  assert.ok(key.length <= 200);
});

test("server-sent events are split into complete events, the rest kept", () => {
  const [events, rest] = Core.parseSse('event: status\nid: 1\ndata: {"status":"queued"}\n\n: keep-alive\n\nevent: status\nid: 2\ndata: {"sta');
  assert.equal(events.length, 1);
  assert.deepEqual(events[0], { event: "status", id: "1", data: '{"status":"queued"}' });
  assert.equal(rest, 'event: status\nid: 2\ndata: {"sta');
  const [more] = Core.parseSse("data: a\r\ndata: b\r\n\r\n");
  assert.equal(more[0].data, "a\nb");
});
