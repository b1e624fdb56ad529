"""The deployment files stay true to the code (no Docker engine here, so they are checked by parsing)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from service.__main__ import COMMANDS
from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
# Variables read by the images themselves, not by the service.
IMAGE_VARIABLES = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


def env_example_names() -> list[str]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return [line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line)]


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    names = env_example_names()
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == SETTING_NAMES, set(names) ^ SETTING_NAMES


def test_env_example_loads_as_is() -> None:
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.llm_backend == "dryrun"
    assert settings.gigachat_verify_ssl_certs is True


def test_compose_sets_only_real_settings_and_runs_real_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "kafka", "migrate", "api", "worker"} <= set(services)
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    for name in ("migrate", "api", "worker"):
        service = services[name]
        unknown = set(service["environment"]) - SETTING_NAMES
        assert not unknown, f"{name} sets variables that are not settings: {unknown}"
        command = " ".join(service["command"])
        used = re.findall(r"python -m service (\w+)", command)
        assert used, f"{name} does not run the service CLI"
        assert set(used) <= set(COMMANDS), f"{name} runs unknown commands {used}"
    for name in ("postgres",):
        assert set(services[name]["environment"]) <= IMAGE_VARIABLES


def test_compose_has_no_default_passwords() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            # A password is required from the operator (${VAR:?message}), never given a value here.
            if "PASSWORD" in key:
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), (name, key)
    assert "${POSTGRES_PASSWORD:?" in compose["services"]["api"]["environment"]["DATABASE_URL"]


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^USER app$", text, re.M)
    assert "HEALTHCHECK" in text and "/api/v1/health" in text
    assert re.search(r'CMD \["python", "-m", "service", "api"\]', text)
