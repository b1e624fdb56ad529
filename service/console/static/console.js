// The console's only script: refreshes the overview's figures in place every few seconds. The page
// works without it (reload to refresh); nothing here is needed for any action.
"use strict";
(function () {
  const live = document.querySelector("[data-live]");
  if (!live) return;
  const url = live.getAttribute("data-live");
  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) live.innerHTML = await response.text();
    } catch (error) {
      // A refresh that fails leaves the last figures; the next one tries again.
    }
  }
  setInterval(refresh, 5000);
})();
