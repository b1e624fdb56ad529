"""The Kubernetes deployment in deploy/ is valid and true to the code.

Every core object is validated offline against the Kubernetes OpenAPI schemas that the
`kubernetes-validate` package ships (strict: an unknown field fails). KEDA's ScaledObject is a custom
resource those schemas do not have, and no installable package ships KEDA's CRD schema without side
effects on this test suite, so its shape is checked here field by field against the CRD
(keda.sh/v1alpha1: required `spec.scaleTargetRef.name` and `spec.triggers[].type`, string-valued
trigger metadata, the known spec keys). Beyond the schemas: the settings, topics, consumer group,
commands, probes and the PostgreSQL connection budget must agree with the code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from service.__main__ import COMMANDS
from service.app import create_app
from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# The oldest Kubernetes release still widely run, and the newest the package knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SECRET_NAME = "gigaoffice-secrets"
# Settings that carry credentials: they may come only from the Secret.
SECRET_SETTINGS = {
    name.upper()
    for name, info in Settings.model_fields.items()
    if "SecretStr" in str(info.annotation) or info.annotation is SecretStr
} | {"DATABASE_URL", "REDIS_URL", "TEST_DATABASE_URL"}
KEDA_SPEC_KEYS = {
    "advanced",
    "cooldownPeriod",
    "fallback",
    "idleReplicaCount",
    "initialCooldownPeriod",
    "maxReplicaCount",
    "minReplicaCount",
    "pollingInterval",
    "scaleTargetRef",
    "triggers",
}
KEDA_TRIGGER_KEYS = {"authenticationRef", "metadata", "metricType", "name", "type", "useCachedMetrics"}


def load_kustomization(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization yields: its resources (files, or directories with their own
    kustomization), with its `images` tags applied — the parts of kustomize these files use."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(spec) <= {"apiVersion", "kind", "resources", "images"}, "a kustomize feature this test ignores"
    objects: list[dict[str, Any]] = []
    for entry in spec["resources"]:
        path = (directory / entry).resolve()
        assert path.is_relative_to(DEPLOY), entry
        if path.is_dir():
            objects.extend(load_kustomization(path))
        else:
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    for image in spec.get("images", []):
        for container in containers(objects):
            if container["image"] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return objects


def containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            found.extend(obj["spec"]["template"]["spec"]["containers"])
    return found


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


APP = load_kustomization(DEPLOY / "app")
MIGRATE = load_kustomization(DEPLOY / "migrate")
ALL = {(o["kind"], o["metadata"]["name"]): o for o in APP + MIGRATE}
CONFIG = by_kind(APP, "ConfigMap")["gigaoffice-config"]


def configured() -> Settings:
    """The settings a pod gets from the ConfigMap (the Secret's values stand in as placeholders)."""
    values = {key.lower(): value for key, value in CONFIG["data"].items()}
    return Settings(_env_file=None, gigachat_credentials="placeholder", **values)  # type: ignore[call-arg]


def test_every_manifest_file_is_deployed() -> None:
    files = {p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml"}
    listed = set()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        listed |= {(kustomization.parent / entry).resolve() for entry in spec["resources"]}
    assert files <= listed, files - listed
    kinds = {kind for kind, _ in ALL}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"} <= kinds
    assert "ScaledObject" in kinds and "ConfigMap" in kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_against_the_kubernetes_schemas(version: str) -> None:
    for (kind, name), obj in ALL.items():
        if obj["apiVersion"].startswith("keda.sh/"):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}/{name} is not a valid Kubernetes {version} object: {exc.message}")


def test_the_validator_refuses_an_invalid_object() -> None:
    # The check above can fail: an unknown field in a container is refused.
    broken = yaml.safe_load(yaml.safe_dump(ALL[("Deployment", "gigaoffice-api")]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_scaled_object_has_kedas_shape() -> None:
    scaled = by_kind(APP, "ScaledObject")["gigaoffice-worker"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= KEDA_SPEC_KEYS, set(spec) - KEDA_SPEC_KEYS
    assert isinstance(spec["scaleTargetRef"]["name"], str)
    assert set(spec["scaleTargetRef"]) <= {"name", "kind", "apiVersion", "envSourceContainerName"}
    for key in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        assert isinstance(spec[key], int) and spec[key] >= 0, key
    assert spec["triggers"], "a ScaledObject needs triggers"
    for trigger in spec["triggers"]:
        assert set(trigger) <= KEDA_TRIGGER_KEYS, set(trigger) - KEDA_TRIGGER_KEYS
        assert trigger["type"] == "kafka"
        # The CRD types trigger metadata as a map of strings: a bare number or boolean is refused.
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
        assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(trigger["metadata"])
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    # The HPA behavior KEDA passes on is the core type's: validate it as one.
    hpa = yaml.safe_load(yaml.safe_dump(ALL[("HorizontalPodAutoscaler", "gigaoffice-api")]))
    hpa["spec"]["behavior"] = behavior
    kubernetes_validate.validate(hpa, K8S_VERSIONS[0], strict=True)


def test_workers_scale_on_the_lag_of_both_lanes_from_the_settings() -> None:
    settings = configured()
    scaled = by_kind(APP, "ScaledObject")["gigaoffice-worker"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] in by_kind(APP, "Deployment")
    lanes = {t["metadata"]["topic"]: t["metadata"] for t in spec["triggers"]}
    assert set(lanes) == {settings.kafka_topic_requests, settings.kafka_topic_requests_batch}
    for meta in lanes.values():
        assert meta["consumerGroup"] == settings.kafka_consumer_group
        assert meta["bootstrapServers"] == settings.kafka_bootstrap_servers
        assert meta["allowIdleConsumers"] == "false"
    # Lag counts queued and running records; one worker runs this many at once in each lane.
    assert int(lanes[settings.kafka_topic_requests]["lagThreshold"]) == settings.worker_concurrency
    assert int(lanes[settings.kafka_topic_requests_batch]["lagThreshold"]) == settings.batch_concurrency
    # Beyond one worker per partition the rest sit idle; never zero (the sweeper and feeder live there).
    assert spec["maxReplicaCount"] == settings.kafka_topic_partitions
    assert spec["minReplicaCount"] >= 1


def test_config_map_holds_real_settings_and_no_secret() -> None:
    names = {name.upper() for name in Settings.model_fields}
    data = CONFIG["data"]
    assert set(data) <= names, set(data) - names
    assert not set(data) & SECRET_SETTINGS
    assert all(isinstance(value, str) for value in data.values())
    configured()  # the values pass the settings' validation, as at a pod's start


def test_secrets_come_only_from_the_secret() -> None:
    for container in containers(list(ALL.values())):
        sources = container["envFrom"]
        assert {"secretRef": {"name": SECRET_NAME}} in sources, container["name"]
        assert {"configMapRef": {"name": "gigaoffice-config"}} in sources, container["name"]
        for variable in container.get("env", []):
            assert variable["name"] not in SECRET_SETTINGS or "valueFrom" in variable, variable
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    baked = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", text)) & SECRET_SETTINGS
    assert not baked, f"the image sets {baked}"
    for path in DEPLOY.rglob("*.yaml"):
        assert "kind: Secret" not in path.read_text(encoding="utf-8"), f"{path} holds a Secret"


def test_containers_run_real_commands_with_limits_unprivileged() -> None:
    for container in containers(list(ALL.values())):
        command = " ".join(container["command"])
        used = re.findall(r"python -m service (\w+)", command)
        assert used and set(used) <= set(COMMANDS), command
        assert container["image"].startswith("gigaoffice-ai-service:"), container["image"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (container["name"], kind)
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
    for obj in ALL.values():
        if obj["kind"] in ("Deployment", "Job"):
            assert obj["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_api_probes_are_the_health_routes() -> None:
    paths = set(create_app().openapi()["paths"])
    api = by_kind(APP, "Deployment")["gigaoffice-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/api/v1/health/live"
    assert {"/api/v1/health/ready", "/api/v1/health/live"} <= paths
    port = next(p["containerPort"] for p in api["ports"] if p["name"] == "http")
    assert port == configured().port
    worker = by_kind(APP, "Deployment")["gigaoffice-worker"]["spec"]["template"]["spec"]["containers"][0]
    metrics = next(p["containerPort"] for p in worker["ports"] if p["name"] == "metrics")
    assert metrics == configured().worker_metrics_port
    assert configured().worker_metrics_host == "0.0.0.0", "the probe could not reach a loopback port"


def test_every_deployment_has_a_disruption_budget_and_a_scaler() -> None:
    budgets = by_kind(APP, "PodDisruptionBudget").values()
    for name, deployment in by_kind(APP, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets"
    hpa = by_kind(APP, "HorizontalPodAutoscaler")["gigaoffice-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "gigaoffice-api"


def test_postgres_connections_stay_under_max_connections() -> None:
    """3 × DB_POOL_SIZE per API or worker process (SQLAlchemy pool + overflow, asyncpg pool), 2 × per
    dispatcher, at the autoscalers' maximum replicas (docs/operations.md)."""
    settings = configured()
    pool = settings.db_pool_size
    api_pods = by_kind(APP, "HorizontalPodAutoscaler")["gigaoffice-api"]["spec"]["maxReplicas"]
    workers = by_kind(APP, "ScaledObject")["gigaoffice-worker"]["spec"]["maxReplicaCount"]
    dispatchers = by_kind(APP, "Deployment")["gigaoffice-webhooks"]["spec"]["replicas"]
    migrate = 2 * pool  # the Job, while it runs
    worst = 3 * pool * (api_pods * settings.api_workers + workers) + 2 * pool * dispatchers + migrate
    budget = int(CONFIG["metadata"]["annotations"]["gigaoffice/postgres-max-connections"])
    reserved = 3  # PostgreSQL's superuser_reserved_connections default
    assert worst < budget - reserved, f"{worst} connections at most, {budget} planned for"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
@pytest.mark.parametrize("overlay", ["app", "migrate"])
def test_kustomize_builds_the_same_objects(overlay: str) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / overlay)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    objects = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    ours = load_kustomization(DEPLOY / overlay)
    key = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert key == sorted((o["kind"], o["metadata"]["name"]) for o in ours)
    assert sorted(c["image"] for c in containers(objects)) == sorted(c["image"] for c in containers(ours))
