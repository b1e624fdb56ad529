/*
 * Loads the editor's plugin SDK (plugins.js), which speaks the editor's side of the plugin protocol
 * and defines window.Asc.plugin. It is ONLYOFFICE's code, never copied into this repository:
 * - installed in an editor (Desktop Editors, Docs, R7-Office), plugins sit beside the SDK's v1/
 *   folder, so ../v1/plugins.js is the editor's own copy;
 * - loaded from a URL (e.g. this service's /plugin/), it comes from ONLYOFFICE's public SDK address.
 * Written with document.write so that it runs before the plugin's scripts, as a static tag would.
 */
(function () {
  "use strict";
  if (window.Asc && window.Asc.plugin) return; // a host that injected the SDK itself
  var local = "../v1/plugins.js";
  var published = "https://onlyoffice.github.io/sdkjs-plugins/v1/plugins.js";
  window.GigaSdkFallback = function () {
    if (!(window.Asc && window.Asc.plugin)) document.write('<script src="' + published + '"><\/script>');
  };
  // The second tag runs once the first has loaded or failed: only then is the fallback needed.
  document.write('<script src="' + local + '"><\/script><script>GigaSdkFallback()<\/script>');
})();
