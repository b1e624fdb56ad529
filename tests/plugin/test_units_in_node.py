"""The plugin's pure JavaScript (plugin/scripts/core.js: range ↔ rows, where answers go, error texts,
call keys, SSE parsing) is unit-tested with node's own runner; `make test` runs it through here."""

from __future__ import annotations

import shutil
import subprocess

from tests.plugin.harness import REPO


def test_the_plugins_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    assert node, "node (v18+) is needed for the plugin's unit tests"
    run = subprocess.run(
        [node, "--test", "plugin/tests/"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
