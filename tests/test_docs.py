"""The documentation site builds offline in strict mode (a broken link or anchor fails), loads nothing
from another host, and its configuration page documents every setting the code has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import SETTING_GROUPS, Settings
from service.settings_doc import settings_table

ROOT = Path(__file__).resolve().parents[1]
# Elements that make a browser fetch something: an external one would load from another host.
EXTERNAL_ASSET = re.compile(
    r"<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc=[\"'](?:https?:)?//"
    r"|<link\b[^>]*\bhref=[\"'](?:https?:)?//[^>]*>",
    re.IGNORECASE,
)
EXTERNAL_CSS = re.compile(r"(?:url\(|@import)\s*[\"']?(?:https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_setting_has_a_description_and_one_group() -> None:
    grouped = [name for group in SETTING_GROUPS for name in group.model_fields]
    assert len(grouped) == len(set(grouped)), "a setting is declared in two groups"
    assert set(grouped) == set(Settings.model_fields)
    missing = [name for name, info in Settings.model_fields.items() if not (info.description or "").strip()]
    assert not missing, f"settings without a description: {missing}"


def test_the_table_has_a_row_per_setting() -> None:
    table = settings_table()
    rows = re.findall(r"^\| <span id=\"(\w+)\"></span>`(\w+)` \|", table, re.MULTILINE)
    assert [env for env, _ in rows] == [name for _, name in rows]
    assert sorted(name for _, name in rows) == sorted(name.upper() for name in Settings.model_fields)
    assert "| `LLM_BACKEND` |" not in table  # anchored, so the row can be linked to
    assert re.search(r"`WORKER_CONCURRENCY` \| int \(≥ 1, ≤ 10000\) \| `64` \|", table)
    assert re.search(r"`GIGACHAT_CREDENTIALS` \| secret \| \*unset\* \|", table)


def test_site_builds_strict_with_the_generated_table(site: Path) -> None:
    page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f'id="{name.upper()}"' in page, name
    assert "settings-table" not in page  # the marker was replaced


def test_site_loads_nothing_from_another_host(site: Path) -> None:
    for path in site.rglob("*.html"):
        found = EXTERNAL_ASSET.search(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(site)} loads {found.group(0)!r}"
    for path in site.rglob("*.css"):
        found = EXTERNAL_CSS.search(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(site)} loads {found.group(0)!r}"


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
