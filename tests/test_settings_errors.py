"""A bad setting stops start-up with one clear line per problem (naming the variable), not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def start(tmp_path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    # A clean environment and an empty working directory: no .env, no inherited settings.
    clean = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT), **env}
    return subprocess.run(
        [sys.executable, "-m", "service", command],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = start(
        tmp_path, "migrate", REQUEST_TTL_SECONDS="25", PORT="eighty", GIGACHAT_CREDENTIALS="top-secret"
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert any(
        line.startswith("configuration error: REQUEST_TTL_SECONDS:") and "60" in line for line in lines
    )
    assert any(line.startswith("configuration error: PORT:") and "'eighty'" in line for line in lines)
    assert "Traceback" not in done.stderr and "top-secret" not in done.stderr


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    done = start(tmp_path, "api", OPENAI_EXTRA_HEADERS="{not json", OPENAI_API_KEY="sk-hidden")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("configuration error: ")
    ]
    assert "OPENAI_EXTRA_HEADERS" in done.stderr and "sk-hidden" not in done.stderr


def test_cross_field_problem_is_one_line(tmp_path: Path) -> None:
    done = start(tmp_path, "worker", LLM_BACKEND="dryrun", LLM_FALLBACK_BACKEND="dryrun")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "configuration error: settings: LLM_FALLBACK_BACKEND must differ from LLM_BACKEND"
    )
