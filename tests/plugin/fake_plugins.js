/*
 * The plugin's side of the plugin protocol, for the browser tests only: served to the plugin's frame
 * at ../v1/plugins.js in place of the editor's own plugins.js, it offers the window.Asc.plugin calls
 * the plugin makes and hands them to the fake editor in the parent page (host.html). Like the real
 * SDK, a command crosses as source text plus a JSON copy of Asc.scope, and the plugin's init runs
 * once the page has loaded, after its translations are in.
 */
(function () {
  "use strict";
  const host = window.parent.FakeEditor;
  window.Asc = window.Asc || {};
  window.Asc.scope = {};
  let translations = {};

  const plugin = {
    info: { editorType: "cell", lang: host.lang, guid: null },
    tr(text) {
      return Object.prototype.hasOwnProperty.call(translations, text) ? translations[text] : text;
    },
    executeMethod(name, args, callback) {
      host.executeMethod(name, args || []).then((value) => callback && callback(value));
      return true;
    },
    callCommand(func, isClose, isCalc, callback) {
      const source = typeof func === "function" ? func.toString() : String(func);
      host.callCommand(source, JSON.stringify(window.Asc.scope || {}), !!isCalc).then(
        (value) => callback && setTimeout(() => callback(value), 0),
        (err) => console.error("command failed", err),
      );
    },
    attachEditorEvent(name, callback) {
      host.on(name, callback);
    },
    executeCommand() {},
  };
  window.Asc.plugin = plugin;

  window.addEventListener("load", async () => {
    if (!host.lang.startsWith("en")) {
      try {
        translations = await (await fetch("translations/" + host.lang + ".json")).json();
      } catch (err) {
        translations = {};
      }
    }
    if (typeof plugin.onThemeChanged === "function") plugin.onThemeChanged({ type: host.theme });
    plugin.init("");
  });
})();
