"""The audit log (issue 18): each administrative change is recorded with who, when, what, before
and after; it is readable by admins only, and no code can update or delete an entry."""

from __future__ import annotations

import ast
import inspect

import pytest

from service.db import audit_repo
from tests.support import bearer, issue_key, make_settings, running_service


def test_the_audit_repository_neither_updates_nor_deletes() -> None:
    tree = ast.parse(inspect.getsource(audit_repo))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not names & {"update", "delete", "merge", "execute_update"}, names
    body = tree.body[1:]  # past the module docstring: no raw SQL that writes either
    texts = [
        n.value.upper()
        for part in body
        for n in ast.walk(part)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    assert not [t for t in texts if "UPDATE" in t or "DELETE" in t], texts


async def test_admin_changes_are_recorded(database_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(database_url, kafka_bootstrap)
    admin_secret = await issue_key(settings, "auditor", "admin")
    user_secret = await issue_key(settings, "someone")
    admin = bearer(admin_secret)
    async with running_service(settings, with_worker=False) as svc:
        created = await svc.client.post("/api/v1/keys", json={"name": "audited"}, headers=admin)
        assert created.status_code == 201, created.text
        key_id = created.json()["id"]
        admin_id = (await svc.client.get("/api/v1/keys", headers=admin)).json()
        admin_key_id = next(k["id"] for k in admin_id if k["name"] == "auditor")
        patched = await svc.client.patch(f"/api/v1/keys/{key_id}", json={"daily_tokens": 5}, headers=admin)
        assert patched.status_code == 200, patched.text
        assert (await svc.client.delete(f"/api/v1/keys/{key_id}", headers=admin)).status_code == 200
        assert (await svc.client.get("/api/v1/usage?owner=someone-else", headers=admin)).status_code == 200

        # Users cannot read it.
        assert (await svc.client.get("/api/v1/audit", headers=bearer(user_secret))).status_code == 403

        page = await svc.client.get(f"/api/v1/audit?target_id={key_id}", headers=admin)
        assert page.status_code == 200, page.text
        entries = page.json()["data"]
        assert [e["action"] for e in entries] == ["key.revoked", "key.updated", "key.created"]
        assert all(e["actor"] == admin_key_id for e in entries)
        revoked, updated, _ = entries
        assert updated["before"]["daily_tokens"] is None and updated["after"]["daily_tokens"] == 5
        assert revoked["before"]["revoked_at"] is None and revoked["after"]["revoked_at"]
        assert "key_hash" not in updated["after"]

        reads = (await svc.client.get("/api/v1/audit?action=admin_read.usage", headers=admin)).json()["data"]
        assert reads and reads[0]["target_id"] == "someone-else"

        # Keyset pagination walks the whole log without repeats.
        seen: list[int] = []
        before = None
        while True:
            query = "limit=2" + (f"&before={before}" if before else "")
            body = (await svc.client.get(f"/api/v1/audit?{query}", headers=admin)).json()
            seen += [e["id"] for e in body["data"]]
            before = body["next_before"]
            if before is None:
                break
        assert seen == sorted(set(seen), reverse=True) and len(seen) >= 5


@pytest.mark.parametrize("database", ["postgresql"])
async def test_prompt_and_webhook_changes_are_recorded(
    database: str, postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, webhook_allow_private_targets=True)
    admin = bearer(await issue_key(settings, "prompt-admin", "admin"))
    async with running_service(settings, with_worker=False) as svc:
        hook = await svc.client.post(
            "/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=admin
        )
        assert hook.status_code == 201, hook.text
        endpoint_id = hook.json()["id"]
        assert (
            await svc.client.delete(f"/api/v1/webhooks/endpoints/{endpoint_id}", headers=admin)
        ).status_code < 300
        body = (await svc.client.get(f"/api/v1/audit?target_id={endpoint_id}", headers=admin)).json()
        actions = [e["action"] for e in body["data"]]
        assert actions == ["webhook.deleted", "webhook.created"]
        assert body["data"][0]["after"]["enabled"] is False
        assert "secret" not in body["data"][1]["after"]
