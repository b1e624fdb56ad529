"""Schemathesis over the service's own OpenAPI: generated requests, valid and invalid, against the
in-process app on real PostgreSQL and Tansu. No 5xx, and every response is documented: its status
code, content type and body schema; invalid input is refused.

Bounded (SCHEMATHESIS_MAX_EXAMPLES per operation and mode, default 40) and reproducible
(derandomized: the same examples every run); about a minute on a quiet machine.

The operations are driven with Hypothesis directly rather than through schemathesis' pytest
integration, whose lazy-fixture plumbing does not work with the pinned pytest.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi

from service.app import create_app
from service.config import Settings
from service.seeding import seed_database
from tests.conftest import fresh_postgres_database
from tests.support import bearer, issue_key, make_settings

# Schemathesis' own strategies draw from `random`, which Hypothesis seeds per example; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "40"))
CHAT = "POST /v1/chat/completions"


@schemathesis.check
def not_a_server_error_but_a_chat_timeout(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """No 5xx, except the one OpenAI's protocol asks of a chat answer that is late: here every chat
    request is late (no worker runs), so it answers its documented 504 `timeout` after the wait."""
    if case.operation.label == CHAT and response.status_code == 504:
        assert response.json()["error"]["code"] == "timeout", response.text
        return None
    return schemathesis.checks.not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_a_chat_timeout,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]


@pytest.fixture(scope="module")
async def fuzz_settings(kafka_bootstrap: str) -> AsyncIterator[Settings]:
    # A database of its own: the fuzzer writes arbitrary templates that other tests must not see.
    async with fresh_postgres_database() as database_url:
        configured = make_settings(
            database_url, kafka_bootstrap, long_poll_max_seconds=0.5, chat_wait_seconds=0.5
        )
        await seed_database(configured)  # templates and presets to read, edit and delete
        yield configured


@pytest.fixture(scope="module")
async def admin_headers(fuzz_settings: Settings) -> dict[str, str]:
    # An admin key reaches every route (prompt and key writes too); the rest also answer anonymous
    # callers, which the other tests cover.
    return bearer(await issue_key(fuzz_settings, "fuzzer", "admin"))


@pytest.fixture(scope="module")
def api_schema(fuzz_settings: Settings) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(fuzz_settings)
    # Schemathesis runs the app's lifespan (database pools, broker producer) on its own event loop
    # and keeps it for every request of the module; it is shut down here.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        yield schema
    finally:
        asgi.shutdown_lifespans()


def run_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def exercise(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, headers=headers)

    exercise()


def test_api_conforms_to_its_openapi(
    api_schema: schemathesis.BaseSchema, admin_headers: dict[str, str]
) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20, "the schema lost operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, admin_headers)
            except Unsatisfiable:  # nothing to make invalid: an operation without parameters
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # all operations run; failures reported together
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert not failures, "\n\n".join(failures)
