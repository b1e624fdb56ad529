"""A seed deployment's .env, logs and CLI work unchanged (issue 8)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy.engine import make_url

from service.__main__ import COMMANDS, build_parser
from service.config import Settings
from service.logging import configure_logging

ROOT = Path(__file__).resolve().parents[1]

# The seed document's .env block, as deployments have it (comments and all).
SEED_ENV = """\
# Основные настройки
GIGACHAT_RUN_MODE=cloud  # dryrun, cloud, mtls
PORT=8080
LOG_LEVEL=info

# База данных PostgreSQL
DB_HOST=db.internal
DB_PORT=6543
DB_NAME=gigaoffice
DB_USER=gigaoffice
DB_PASSWORD=p@ss:w/rd

# Apache Kafka
KAFKA_BOOTSTRAP_SERVERS=localhost:9092
KAFKA_TOPIC_REQUESTS=gigaoffice-requests
KAFKA_TOPIC_RESPONSES=gigaoffice-responses
KAFKA_CONSUMER_GROUP=gigaoffice-group

GIGACHAT_CLASSIFY_MODEL=GigaChat
GIGACHAT_GENERATE_MODEL=GigaChat-Pro
"""


@pytest.fixture
def seed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "PORT", "LOG_LEVEL", "GIGACHAT_RUN_MODE", "LLM_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".env"
    path.write_text(SEED_ENV, encoding="utf-8")  # verbatim, inline comment included
    return path


def test_a_seed_env_file_works_unchanged(seed_env: Path) -> None:
    settings = Settings(_env_file=seed_env)  # type: ignore[call-arg]
    url = make_url(settings.database_url)
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+asyncpg",
        "db.internal",
        6543,
        "gigaoffice",
    )
    assert (url.username, url.password) == ("gigaoffice", "p@ss:w/rd")  # special characters survive
    assert settings.port == 8080
    assert settings.log_level == "INFO"
    assert settings.llm_backend == "gigachat-cloud"
    assert settings.kafka_topic_requests == "gigaoffice-requests"
    assert settings.kafka_topic_responses == "gigaoffice-responses"
    assert settings.kafka_consumer_group == "gigaoffice-group"
    assert settings.llm_classify_model == "GigaChat"
    assert settings.answer_model("spreadsheet-analysis") == "GigaChat-Pro"


def test_database_url_wins_over_db_parts(seed_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@primary/app")
    settings = Settings(_env_file=seed_env)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql+asyncpg://app@primary/app"


def test_without_db_host_the_embedded_default_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert Settings(_env_file=None, db_name="x").database_url.startswith("sqlite")  # type: ignore[call-arg]


@pytest.mark.parametrize(("given", "level"), [("debug", "DEBUG"), ("Info", "INFO"), ("warn", "WARNING")])
def test_log_level_in_any_case(given: str, level: str) -> None:
    assert Settings(_env_file=None, log_level=given).log_level == level  # type: ignore[call-arg]


def test_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        Settings(_env_file=None, log_level="loud")  # type: ignore[call-arg]


def test_model_per_category_wins_over_the_generate_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_BY_CATEGORY", '{"process-analysis": "GigaChat-Max"}')
    monkeypatch.setenv("GIGACHAT_GENERATE_MODEL", "GigaChat-Pro")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.answer_model("process-analysis") == "GigaChat-Max"
    assert settings.answer_model("spreadsheet-search") == "GigaChat-Pro"
    monkeypatch.delenv("LLM_MODEL_BY_CATEGORY")
    monkeypatch.delenv("GIGACHAT_GENERATE_MODEL")
    assert Settings(_env_file=None).answer_model("process-analysis") is None  # type: ignore[call-arg]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    yield
    logger.remove()
    logger.add(sys.stderr)


@pytest.mark.usefixtures("restore_logging")
def test_log_file_is_written_rotated_and_pruned(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "gigaoffice.log"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, log_file=log_file, log_rotation="2 KB", log_retention="2", log_level="info"
    )
    configure_logging(settings)
    for number in range(200):
        logger.info("line {} {}", number, "x" * 40)
    logger.debug("below the level")
    logger.complete()
    logger.remove()  # closes the file and finishes retention clean-up
    files = sorted(log_file.parent.iterdir())
    current = log_file.read_text(encoding="utf-8")
    assert "line 199" in current and "below the level" not in current
    # Rotated at ~2 KB; only the 2 newest rotated files kept besides the current one.
    assert 2 <= len(files) <= 3, [f.name for f in files]
    assert all(f.stat().st_size < 4096 for f in files)


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_each_command_has_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help(["--help"], capsys)
    assert all(name in top for name in COMMANDS)
    api = _help(["api", "--help"], capsys)
    assert "--port" in api and "--workers" in api and "--concurrency" not in api
    worker = _help(["worker", "--help"], capsys)
    assert "--concurrency" in worker and "--port" not in worker and "Kafka" in worker
    migrate = _help(["migrate", "--help"], capsys)
    assert "Alembic" in migrate and "--port" not in migrate


def test_help_through_the_real_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "up", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m service up") and "--concurrency" in result.stdout


def test_keys_help_comes_from_its_own_parser() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "keys", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m service keys") and "revoke" in result.stdout
