/*
 * GigaOffice plugin: the panel. Settings, a question about the selection, live status, the answer
 * written back (never over filled cells without asking), a chart inserted, text shown, a short
 * history. Registers the cell functions on start.
 */
(function (root) {
  "use strict";
  const Core = root.GigaCore;
  const SETTINGS_KEY = "gigaoffice.settings";
  const HISTORY_KEY = "gigaoffice.history";
  const HISTORY_SIZE = 10;

  const $ = (id) => document.getElementById(id);

  function tr(text, values) {
    const plugin = root.Asc && root.Asc.plugin;
    return Core.fill(plugin && typeof plugin.tr === "function" ? plugin.tr(text) : text, values);
  }

  /** An error in the user's language: the service's failures by their status, the rest as they are. */
  function describe(err) {
    if (err && typeof err.status === "number") return Core.errorText(err.status, err.body, err.retryAfter, tr);
    return tr((err && err.message) || String(err));
  }

  // --- settings (local storage of the plugin's frame; the key is never logged) --------------------

  function loadSettings() {
    try {
      return JSON.parse(localStorage.getItem(SETTINGS_KEY) || "null") || {};
    } catch (err) {
      return {};
    }
  }

  const Panel = {
    settings: loadSettings(),
    client: null,
    current: null, // {id, controller, selection}
    pending: null, // a write waiting for the user's yes
    states: [], // every status shown, in order (the tests read it)
    answer: "",
    selection: null,
  };
  Panel.client = new root.GigaClient(() => Panel.settings);

  function saveSettings() {
    Panel.settings = {
      serviceUrl: $("service-url").value.trim().replace(/\/+$/, ""),
      apiKey: $("api-key").value.trim(),
    };
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(Panel.settings));
    return Panel.settings;
  }

  // --- what the panel shows ------------------------------------------------------------------------

  function showStatus(state, text) {
    $("status-box").hidden = false;
    const el = $("status");
    el.dataset.state = state;
    el.textContent = text;
    Panel.states.push(state);
    document.body.dataset.state = state;
  }

  function showConnection(state, text) {
    $("connection").dataset.state = state;
    $("connection").textContent = { ok: tr("connected"), key: tr("key refused"), down: tr("offline") }[state] || "";
    $("connection-message").textContent = text || "";
    $("connection-message").dataset.state = state;
  }

  function showAnswer(text) {
    Panel.answer = text || "";
    $("answer").hidden = !Panel.answer;
    $("answer-text").textContent = Panel.answer;
  }

  function busy(on) {
    $("submit").disabled = on;
    $("cancel").hidden = !on;
  }

  function queuedText(status) {
    const queue = status.queue;
    if (!queue) return tr("Queued");
    const ahead = queue.ahead_capped ? queue.ahead + "+" : queue.ahead;
    const eta = queue.eta_seconds === null || queue.eta_seconds === undefined ? null : Math.max(1, Math.round(queue.eta_seconds));
    return eta === null ? tr("Queued — {ahead} ahead", { ahead }) : tr("Queued — {ahead} ahead, about {eta} s", { ahead, eta });
  }

  function onStatus(status) {
    if (status.status === "queued") showStatus("queued", queuedText(status));
    else if (status.status === "processing") showStatus("processing", tr("Working…"));
  }

  // --- categories and presets ----------------------------------------------------------------------

  function lang() {
    const info = root.Asc && root.Asc.plugin && root.Asc.plugin.info;
    return info && typeof info.lang === "string" && info.lang.toLowerCase().startsWith("ru") ? "ru" : "en";
  }

  async function fillPickers() {
    try {
      const [categories, presets] = await Promise.all([Panel.client.categories(), Panel.client.presets()]);
      const category = $("category");
      category.length = 1;
      for (const item of categories) {
        if (!item.active) continue;
        const option = new Option((item.display_name && item.display_name[lang()]) || item.name, item.name);
        category.add(option);
      }
      Panel.presets = presets;
      fillPresets();
    } catch (err) {
      showConnection(err.status === 401 || err.status === 403 ? "key" : "down", describe(err));
    }
  }

  function fillPresets() {
    const preset = $("preset");
    preset.length = 1;
    const category = $("category").value;
    for (const item of Panel.presets || []) {
      if (item.language !== lang() || (category && item.category !== category)) continue;
      const option = new Option(item.title, String(item.id));
      option.dataset.prompt = item.prompt;
      option.dataset.category = item.category;
      preset.add(option);
    }
  }

  function choosePreset() {
    const option = $("preset").selectedOptions[0];
    if (!option || !option.value) return;
    $("question").value = option.dataset.prompt;
    if (!$("category").value) $("category").value = option.dataset.category;
  }

  // --- selection -----------------------------------------------------------------------------------

  async function readSelection() {
    const selected = await root.GigaEditor.selection();
    const rows = Core.trimEmpty(Core.toRows(selected.values));
    const box = Core.parseRange(selected.address) || { r1: 1, c1: 1, r2: 1, c2: 1 };
    const width = rows.length ? rows[0].length : 0;
    const address = rows.length && width ? Core.formatRange(Core.boxOf(box.r1, box.c1, rows.length, width)) : Core.formatRange(box);
    Panel.selection = { address, rows, sheet: selected.sheet };
    $("selection").textContent = rows.length
      ? tr("Selection: {range} ({rows} × {columns})", { range: address, rows: rows.length, columns: width })
      : tr("Selection: {range} (empty)", { range: address });
    return Panel.selection;
  }

  // --- submit, follow, answer ----------------------------------------------------------------------

  function requestBody(question, selection) {
    const category = $("category").value;
    if (category === "process-analysis") {
      const lines = selection.rows.map((row) => row.filter((cell) => cell !== null).join(" ")).filter(Boolean);
      return {
        kind: "process_analysis",
        title: question.split("\n")[0].slice(0, 200),
        description: [question, ...lines].join("\n").slice(0, 20000),
        language: lang(),
      };
    }
    const body = { kind: "spreadsheet", query_text: question };
    if (selection.rows.length) {
      body.input_range = selection.address;
      body.input_data = selection.rows;
    }
    if (category) body.category = category;
    return body;
  }

  async function submit() {
    const question = $("question").value.trim();
    if (!question) {
      showStatus("error", tr("Type a question first."));
      return;
    }
    if (!Panel.settings.serviceUrl) {
      $("settings").open = true;
      showStatus("error", tr("Set the service URL in the settings first."));
      return;
    }
    busy(true);
    showAnswer("");
    $("confirm").hidden = true;
    const controller = new AbortController();
    let selection;
    try {
      selection = await readSelection();
      showStatus("sending", tr("Sending…"));
      const key = "panel-" + (root.crypto && root.crypto.randomUUID ? root.crypto.randomUUID() : Date.now() + "-" + Math.random());
      const submitted = await Panel.client.submit(requestBody(question, selection), key);
      Panel.current = { id: submitted.id, controller, selection };
      remember({ id: submitted.id, question, at: new Date().toISOString(), selection: selection.address, status: submitted.status });
      onStatus(submitted);
      const final = await Panel.client.follow(submitted.id, onStatus, { signal: controller.signal });
      await finish(final, selection);
    } catch (err) {
      if (err && err.name === "AbortError") showStatus("cancelled", tr("Cancelled."));
      else showStatus("error", describe(err));
    } finally {
      Panel.current = null;
      busy(false);
    }
  }

  async function finish(status, selection) {
    remember({ id: status.id, status: status.status });
    if (status.status !== "completed") {
      showStatus(status.status === "cancelled" ? "cancelled" : "failed", Core.failureText(status, tr));
      return;
    }
    const result = await Panel.client.result(status.id);
    await apply(result.result, selection);
  }

  /** Puts an answer where it belongs: a table into the sheet, a chart onto it, text into the panel. */
  async function apply(result, selection) {
    const kind = Core.answerKind(result);
    const note = Core.answerText(result, tr);
    if (kind === "table") {
      const target = Core.placement(result.values, result.output_range, selection.address);
      const existing = await root.GigaEditor.read(target);
      const filled = Core.occupied(existing);
      showAnswer(note);
      if (filled > 0) {
        Panel.pending = { target, values: result.values };
        $("confirm-text").textContent = tr("{range} already holds {count} values. Overwrite them?", { range: target, count: filled });
        $("confirm").hidden = false;
        showStatus("confirm", tr("The answer is ready: {range}.", { range: target }));
        return;
      }
      await root.GigaEditor.write(target, result.values);
      showStatus("completed", tr("Done: written to {range}.", { range: target }));
      return;
    }
    if (kind === "chart") {
      const plan = Core.chartPlan(result, selection.address);
      const inserted = await root.GigaEditor.chart(plan);
      showAnswer(note);
      showStatus(inserted ? "completed" : "failed", inserted ? tr("Done: chart inserted.") : tr("The editor refused the chart."));
      return;
    }
    if (kind === "histogram") {
      showAnswer([note, tr("Histogram of {columns}", { columns: result.source_columns.join(", ") })].filter(Boolean).join("\n"));
      showStatus("completed", tr("Done."));
      return;
    }
    showAnswer(note || JSON.stringify(result, null, 2));
    showStatus("completed", tr("Done."));
  }

  async function confirmWrite(yes) {
    const pending = Panel.pending;
    Panel.pending = null;
    $("confirm").hidden = true;
    if (!pending) return;
    if (!yes) {
      showStatus("completed", tr("Not written: the cells were kept."));
      return;
    }
    await root.GigaEditor.write(pending.target, pending.values);
    showStatus("completed", tr("Done: written to {range}.", { range: pending.target }));
  }

  async function cancel() {
    const current = Panel.current;
    if (!current) return;
    try {
      await Panel.client.cancel(current.id);
    } catch (err) {
      // 409: it ended meanwhile; the stream says how.
      if (err.status !== 409) showStatus("error", describe(err));
    }
    // The stream brings the cancelled status; the deadline keeps the panel from waiting on a broken one.
    setTimeout(() => current.controller.abort(), 10000);
  }

  async function copyAnswer() {
    try {
      await navigator.clipboard.writeText(Panel.answer);
      showStatus("completed", tr("Copied."));
    } catch (err) {
      // Clipboard access may be denied inside the editor's frame: select the text instead.
      const range = document.createRange();
      range.selectNodeContents($("answer-text"));
      document.getSelection().removeAllRanges();
      document.getSelection().addRange(range);
      showStatus("completed", tr("Selected: press Ctrl+C to copy."));
    }
  }

  async function writeAnswer() {
    const selection = Panel.selection || (await readSelection());
    const target = Core.placement([[Panel.answer]], null, selection.address);
    const existing = await root.GigaEditor.read(target);
    if (Core.occupied(existing) > 0) {
      Panel.pending = { target, values: [[Panel.answer]] };
      $("confirm-text").textContent = tr("{range} already holds {count} values. Overwrite them?", { range: target, count: 1 });
      $("confirm").hidden = false;
      return;
    }
    await root.GigaEditor.write(target, [[Panel.answer]]);
    showStatus("completed", tr("Done: written to {range}.", { range: target }));
  }

  // --- history -------------------------------------------------------------------------------------

  function history() {
    try {
      return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    } catch (err) {
      return [];
    }
  }

  function remember(entry) {
    const items = history();
    const found = items.find((item) => item.id === entry.id);
    if (found) Object.assign(found, entry);
    else items.unshift(entry);
    localStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, HISTORY_SIZE)));
    renderHistory();
  }

  function renderHistory() {
    const list = $("history");
    list.textContent = "";
    for (const item of history()) {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = `${item.question || item.id} · ${item.selection || ""} · ${tr(item.status || "")}`;
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = tr("Fetch again");
      again.dataset.requestId = item.id;
      again.addEventListener("click", () => fetchAgain(item));
      li.append(label, again);
      list.append(li);
    }
  }

  async function fetchAgain(item) {
    busy(true);
    try {
      const status = await Panel.client.status(item.id);
      onStatus(status);
      if (status.status !== "completed") {
        showStatus(status.status === "failed" ? "failed" : status.status, Core.failureText(status, tr));
        return;
      }
      const result = await Panel.client.result(item.id);
      await apply(result.result, { address: item.selection || "A1" });
    } catch (err) {
      showStatus("error", describe(err));
    } finally {
      busy(false);
    }
  }

  // --- connection ----------------------------------------------------------------------------------

  async function checkConnection() {
    saveSettings();
    showConnection("checking", tr("Checking…"));
    const checked = await Panel.client.check();
    if (checked.state === "ok") {
      showConnection("ok", tr("Connected: the service is ready and the key is accepted."));
      await fillPickers();
      await configureFunctions();
    } else if (checked.state === "key") {
      showConnection("key", tr("The service answers, but refused the API key: check the key."));
    } else {
      showConnection("down", describe(checked.error));
    }
    return checked.state;
  }

  async function configureFunctions() {
    try {
      await root.GigaEditor.configureFunctions({ serviceUrl: Panel.settings.serviceUrl, apiKey: Panel.settings.apiKey });
    } catch (err) {
      // No editor answer (e.g. a viewer): the panel still works.
    }
  }

  async function registerFunctions() {
    try {
      const info = root.Asc.plugin.info || {};
      if (info.editorType && info.editorType !== "cell") return;
      await root.GigaEditor.registerFunctions(await root.GigaFunctions.libraryEntry());
    } catch (err) {
      // Editors before 8.1 have no custom functions: the panel works without them.
    }
  }

  // --- start ---------------------------------------------------------------------------------------

  function translatePage() {
    for (const el of document.querySelectorAll("[data-tr]")) {
      if (!el.dataset.source) el.dataset.source = el.textContent;
      el.textContent = tr(el.dataset.source);
    }
  }

  async function defaults() {
    if (Panel.settings.serviceUrl) return;
    try {
      const response = await fetch("defaults.json", { cache: "no-cache" });
      const values = await response.json();
      if (values.serviceUrl) Panel.settings.serviceUrl = values.serviceUrl;
    } catch (err) {
      // No defaults: the user types the address.
    }
  }

  async function start() {
    translatePage();
    renderHistory();
    await defaults();
    $("service-url").value = Panel.settings.serviceUrl || "";
    $("api-key").value = Panel.settings.apiKey || "";
    if (!Panel.settings.serviceUrl) $("settings").open = true;
    $("save-settings").addEventListener("click", () => { saveSettings(); configureFunctions(); checkConnection(); });
    $("check-connection").addEventListener("click", checkConnection);
    $("category").addEventListener("change", fillPresets);
    $("preset").addEventListener("change", choosePreset);
    $("submit").addEventListener("click", submit);
    $("cancel").addEventListener("click", cancel);
    $("confirm-yes").addEventListener("click", () => confirmWrite(true));
    $("confirm-no").addEventListener("click", () => confirmWrite(false));
    $("copy-answer").addEventListener("click", copyAnswer);
    $("write-answer").addEventListener("click", writeAnswer);
    const plugin = root.Asc.plugin;
    if (typeof plugin.attachEditorEvent === "function") {
      // Keep the selection line current while the user moves around the sheet.
      let timer = null;
      const refresh = () => { clearTimeout(timer); timer = setTimeout(() => readSelection().catch(() => {}), 300); };
      plugin.attachEditorEvent("onTargetPositionChanged", refresh);
      plugin.attachEditorEvent("onChangeCurrentSheet", refresh);
    }
    await registerFunctions();
    await configureFunctions();
    readSelection().catch(() => {});
    if (Panel.settings.serviceUrl) {
      const state = await checkConnection();
      if (state !== "ok") $("settings").open = true;
    }
    document.body.dataset.ready = "true";
  }

  function install() {
    const plugin = root.Asc.plugin;
    plugin.init = function () {
      start();
    };
    plugin.onTranslate = translatePage;
    plugin.onThemeChanged = function (theme) {
      if (typeof plugin.onThemeChangedBase === "function") plugin.onThemeChangedBase(theme);
      document.body.dataset.theme = theme && theme.type === "dark" ? "dark" : "light";
    };
    // The panel has no buttons of the editor's: its only button is the panel's close.
    plugin.button = function () {
      if (Panel.current) Panel.current.controller.abort();
      plugin.executeCommand("close", "");
    };
  }

  root.GigaPanel = Panel;
  if (root.Asc && root.Asc.plugin) install();
})(typeof globalThis !== "undefined" ? globalThis : this);
