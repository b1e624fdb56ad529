"""Prompts in the database, classification and validated answers, through the real API, broker and worker."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from service.db import prompts_repo
from service.llm.base import ChatRequest, ChatResponse, Usage
from service.pipeline.answer import parse_answer
from service.pipeline.categories import ACTIVE_CATEGORIES, PROCESS_CATEGORY
from service.pipeline.resources import RESOURCES_DIR, load_resources, shipped_resources
from service.seeding import seed
from tests.support import PROCESS_EXAMPLE, SEED_EXAMPLE, issue_key, make_settings, running_service

SALES = SEED_EXAMPLE["input_data"]


async def _seed(svc: Any) -> Any:
    async with svc.sessions() as session:
        report = await seed(session, shipped_resources())
        await session.commit()
    return report


async def test_seed_is_idempotent_and_keeps_operator_edits(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    admin = await issue_key(settings, "prompt editor", "admin")
    async with running_service(settings, with_worker=False, api_key=admin) as svc:
        await _seed(svc)
        again = await _seed(svc)
        assert not again.changed, (again.added, again.updated)

        current = (
            await svc.client.get("/api/v1/prompts", params={"category": "search", "language": "en"})
        ).json()
        assert len(current) == 1 and current[0]["origin"] in ("shipped", "operator")
        edited = await svc.client.put(
            f"/api/v1/prompts/{current[0]['id']}",
            json={
                "system_prompt": "Operator system. {answer_format}",
                "user_template": "Find: {query}\n{table}",
            },
        )
        assert edited.status_code == 200, edited.text
        edit = edited.json()
        assert (
            edit["version"] == current[0]["version"] + 1
            and edit["origin"] == "operator"
            and edit["is_current"]
        )

        # The project ships new content for every template: operator-owned ones must not change.
        changed_dir = tmp_path / "resources"
        shutil.copytree(RESOURCES_DIR, changed_dir)
        for path in (changed_dir / "prompts").glob("*.yaml"):
            path.write_text(path.read_text(encoding="utf-8").replace("Request:", "Task:"), encoding="utf-8")
        async with svc.sessions() as session:
            report = await seed(session, load_resources(changed_dir))
            await session.commit()
        assert "template spreadsheet-search/en" in report.kept_operator
        assert "template spreadsheet-analysis/en" in report.updated
        async with svc.sessions() as session:
            kept = await prompts_repo.current_template(session, "spreadsheet-search", "en")
            updated = await prompts_repo.current_template(session, "spreadsheet-analysis", "en")
        assert kept is not None and kept.system_prompt == "Operator system. {answer_format}"
        assert updated is not None and "Task:" in updated.user_template and updated.origin == "shipped"

        history = (
            await svc.client.get("/api/v1/prompts", params={"category": "search", "history": True})
        ).json()
        assert len([t for t in history if t["language"] == "en"]) >= 2  # versions are kept, never rewritten


async def test_prompt_and_category_endpoints(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    admin = await issue_key(settings, "prompt editor", "admin")
    async with running_service(settings, with_worker=False, api_key=admin) as svc:
        await _seed(svc)
        active = (await svc.client.get("/api/v1/categories")).json()
        assert [c["name"] for c in active] == list(ACTIVE_CATEGORIES)
        every = (await svc.client.get("/api/v1/categories", params={"include_inactive": True})).json()
        assert "uncertain" in [c["name"] for c in every]
        assert active[0]["display_name"] == {"ru": "Анализ данных", "en": "Data analysis"}

        seed_categories = (await svc.client.get("/api/prompts/categories")).json()
        assert seed_categories["success"] is True and seed_categories["total"] == len(ACTIVE_CATEGORIES)

        presets = (await svc.client.get("/api/prompts/presets", params={"category": "analysis"})).json()
        assert presets["success"] and presets["total"] >= 2
        assert {p["category"] for p in presets["presets"]} == {"spreadsheet-analysis"}
        assert {p["language"] for p in presets["presets"]} == {"ru", "en"}
        bad = await svc.client.get("/api/prompts/presets", params={"category": "poetry"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"

        classified = (
            await svc.client.post("/api/prompts/classify", json={"query_text": "Построй гистограмму"})
        ).json()
        assert classified["success"] and classified["category"] == "data-histogram"
        assert classified["display_name"]["ru"] == "Гистограмма"
        v1 = (await svc.client.post("/api/v1/classify", json={"query_text": "Make the header bold"})).json()
        assert v1["category"] == "spreadsheet-formatting" and 0 < v1["confidence"] <= 1

        bad_template = await svc.client.post(
            "/api/v1/prompts",
            json={
                "category": "analysis",
                "language": "ru",
                "system_prompt": "{secret}",
                "user_template": "{query}",
            },
        )
        assert (
            bad_template.status_code == 422
            and "unknown placeholder" in bad_template.json()["error"]["message"]
        )
        created = await svc.client.post(
            "/api/v1/prompts",
            json={"category": "chart", "language": "ru", "system_prompt": "s", "user_template": "{query}"},
        )
        assert created.status_code == 422  # "chart" is not a category or alias

        created = await svc.client.post(
            "/api/v1/prompts",
            json={"category": "data-chart", "language": "ru", "system_prompt": "S {answer_format}",
                  "user_template": "{query}\n{table}"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        new = created.json()
        deleted = await svc.client.delete(f"/api/v1/prompts/{new['id']}")
        assert deleted.status_code == 204
        current = (
            await svc.client.get("/api/v1/prompts", params={"category": "data-chart", "language": "ru"})
        ).json()
        assert len(current) == 1 and current[0]["version"] == new["version"] - 1  # the previous one is back
        assert (await svc.client.delete(f"/api/v1/prompts/{new['id']}")).status_code == 404


async def test_every_category_end_to_end_with_template_versions(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        await _seed(svc)
        ids: dict[str, str] = {}
        for category in ACTIVE_CATEGORIES:
            if category == PROCESS_CATEGORY:
                response = await svc.submit(PROCESS_EXAMPLE)
            else:
                body = {"kind": "spreadsheet", "query_text": "Найди Товар A", "input_range": "B2:E4",
                        "input_data": SALES, "category": category}  # fmt: skip
                response = await svc.submit(body)
            assert response.status_code == 202, response.text
            ids[category] = response.json()["id"]
        for category, request_id in ids.items():
            final = await svc.wait_final(request_id)
            assert final["status"] == "completed", (category, final)
            assert final["category"] == category
            result = (await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()
            assert parse_answer(category, json.dumps(result["result"])) == result["result"]
            language = "en" if category == PROCESS_CATEGORY else "ru"
            async with svc.sessions() as session:
                template = await prompts_repo.current_template(session, category, language)
            assert template is not None and result["template_version"] == template.version, category
        chart_call = next(c for c in svc.backend.calls if c.context.get("category") == "data-chart")
        assert "| 2 | Товар | Январь |" in chart_call.user  # the range with its real addresses
        assert '"chart_type"' in chart_call.system

        report = await svc.client.get(f"/api/v1/requests/{ids[PROCESS_CATEGORY]}/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/markdown")
        assert (
            report.text.startswith("# Process analysis: Invoice approval")
            and "## Implementation steps" in report.text
        )
        pdf = await svc.client.get(
            f"/api/v1/requests/{ids[PROCESS_CATEGORY]}/report", params={"format": "pdf", "language": "ru"}
        )
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"].endswith('.pdf"')
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        assert "Анализ процесса: Invoice approval" in text and "Шаги внедрения" in text
        unknown = await svc.client.get(
            f"/api/v1/requests/{ids[PROCESS_CATEGORY]}/report", params={"format": "doc"}
        )
        assert unknown.status_code == 422
        not_process = await svc.client.get(f"/api/v1/requests/{ids['spreadsheet-search']}/report")
        assert not_process.status_code == 404


async def test_request_without_category_is_classified(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        await _seed(svc)
        body = {"kind": "spreadsheet", "query_text": "Построй гистограмму распределения продаж",
                "input_range": "A1:D3", "input_data": SALES}  # fmt: skip
        final = await svc.wait_final((await svc.submit(body)).json()["id"])
        assert final["status"] == "completed" and final["category"] == "data-histogram"
        result = (await svc.client.get(f"/api/v1/requests/{final['id']}/result")).json()
        assert result["result"]["source_columns"] and result["result"]["bins"] >= 1


class ScriptedBackend:
    """Answers with the given texts in order (the last one repeats): a model that misbehaves."""

    name = "scripted"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {"ok": True}

    async def chat(self, request: ChatRequest) -> ChatResponse:
        text = self.texts.pop(0) if len(self.texts) > 1 else self.texts[0]
        return ChatResponse(
            text=text, usage=Usage(10, 5, 15), model="scripted", latency_ms=1.0, backend=self.name
        )


async def test_invalid_answer_fails_after_one_repair(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    backend = ScriptedBackend("Sorry, I cannot help with that.")
    async with running_service(settings, backend=backend) as svc:
        final = await svc.wait_final((await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"])
        assert final["status"] == "failed"
        assert final["error"]["code"] == "answer_invalid"
        assert "no usable JSON" in final["error"]["message"]
        assert len(svc.backend.calls) == 2 and svc.backend.calls[1].context.get("repair") is True
        result = await svc.client.get(f"/api/v1/requests/{final['id']}/result")
        assert result.status_code == 409  # never `completed` with an empty result


async def test_repaired_answer_completes(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap)
    backend = ScriptedBackend('{"chart_type": "sparkles", "series": []}', '```json\n{"text": "fixed"}\n```')
    async with running_service(settings, backend=backend) as svc:
        body = {"kind": "spreadsheet", "query_text": "Что такое ВПР?", "category": "spreadsheet-assistance"}
        final = await svc.wait_final((await svc.submit(body)).json()["id"])
        assert final["status"] == "completed", final
        result = (await svc.client.get(f"/api/v1/requests/{final['id']}/result")).json()
        assert result["result"] == {"text": "fixed"} and result["usage"]["llm_calls"] == 2
