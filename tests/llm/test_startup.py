"""Start-up with an LLM setting that cannot work: the process exits with one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.certs import CertBundle

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_wrong_key_password_stops_start_up_with_one_line(
    command: str, certs: CertBundle, tmp_path: Path
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GIGACHAT_", "OPENAI_", "LLM_", "KAFKA_", "DATABASE_", "REDIS_"))
    }
    env |= {
        "PYTHONPATH": str(REPO),
        "LLM_BACKEND": "gigachat-mtls",
        "GIGACHAT_MTLS_CA_BUNDLE_FILE": str(certs.ca_file),
        "GIGACHAT_MTLS_CERT_FILE": str(certs.client_cert),
        "GIGACHAT_MTLS_KEY_FILE": str(certs.client_key_encrypted),
        "GIGACHAT_MTLS_KEY_FILE_PASSWORD": "not-the-password",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/unused.db",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "service", command],
        cwd=tmp_path,  # no .env file to pick up
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in (finished.stdout + finished.stderr).splitlines() if line.strip()]
    assert finished.returncode == 2, lines
    assert len(lines) == 1, lines
    assert "key password is wrong or missing" in lines[0]
    assert "GIGACHAT_MTLS_KEY_FILE_PASSWORD" in lines[0]
    assert "not-the-password" not in lines[0]
    assert "Traceback" not in lines[0]
