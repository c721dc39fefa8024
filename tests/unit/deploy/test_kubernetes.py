"""deploy/kubernetes: the validator CI runs, and what the rendered manifests must hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from tests.unit.deploy._deploy import (
    DEPLOY,
    PROCESSOR_ENV,
    SDK_ENV,
    SINK_ENV,
    load_script,
    settings_kwargs,
)
from tokenline.cli import main as tokenline
from tokenline.common.kafka_security import KafkaSecurity
from tokenline.processor.metrics import Metrics
from tokenline.processor.settings import ProcessorSettings
from tokenline.sink.api.settings import ApiSettings
from tokenline.sink.settings import SinkSettings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

validate = load_script("kubernetes/validate.py")
KUSTOMIZE_DIR = DEPLOY / "kubernetes"

GOOD_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
        - name: demo
          image: demo:1.0
"""


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = validate.load(validate.render(KUSTOMIZE_DIR))
    return rendered


def _by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _pod_specs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pods = {
        f"{r['kind']}/{r['metadata']['name']}": r["spec"]["template"]["spec"]
        for r in resources
        if r["kind"] in {"Deployment", "Job"}
    }
    pods.update(
        {
            f"CronJob/{r['metadata']['name']}": r["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            for r in resources
            if r["kind"] == "CronJob"
        }
    )
    return pods


# ---------------------------------------------------------------- the validator


def test_real_manifests_are_valid(resources: list[dict[str, Any]]) -> None:
    assert validate.problems(resources) == []
    kinds = sorted(r["kind"] for r in resources)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "CronJob",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "Namespace",
            "Secret",
            "Service",
            "Service",
            "Service",
            "Service",
            "Service",
        ]
    )


def test_main_succeeds_on_the_real_kustomization() -> None:
    assert validate.main([str(KUSTOMIZE_DIR)]) == 0


def test_a_valid_deployment_passes() -> None:
    assert validate.problems(validate.load(GOOD_DEPLOYMENT)) == []


def test_wrong_type_fails() -> None:
    broken = GOOD_DEPLOYMENT.replace("replicas: 2", 'replicas: "two"')
    found = validate.problems(validate.load(broken))
    assert found
    assert all("Deployment/demo" in line and "spec.replicas" in line for line in found)
    assert len(found) == len(validate.KUBERNETES_VERSIONS)


def test_unknown_field_fails() -> None:
    broken = GOOD_DEPLOYMENT.replace("image: demo:1.0", "image: demo:1.0\n          imagePolicy: x")
    found = validate.problems(validate.load(broken))
    assert found
    assert "imagePolicy" in found[0]


def test_missing_required_field_fails() -> None:
    broken = GOOD_DEPLOYMENT.replace("          image: demo:1.0\n", "")
    broken = broken.replace("        - name: demo\n", "        - image: demo:1.0\n")
    found = validate.problems(validate.load(broken))
    assert found
    assert "name" in found[0]


def test_unknown_kind_fails() -> None:
    found = validate.problems([{"apiVersion": "example.com/v1", "kind": "Widget"}])
    assert found
    assert "Widget" in found[0]


def test_not_a_resource_fails() -> None:
    assert validate.problems([["a", "list"]])
    assert validate.problems([{"kind": "Deployment"}])


def test_main_fails_on_a_broken_kustomization(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - deployment.yaml\n")
    broken = GOOD_DEPLOYMENT.replace("replicas: 2", 'replicas: "two"')
    (tmp_path / "deployment.yaml").write_text(broken)
    assert validate.main([str(tmp_path)]) == 1
    (tmp_path / "deployment.yaml").write_text(GOOD_DEPLOYMENT)
    assert validate.main([str(tmp_path)]) == 0


def test_main_fails_when_kustomize_fails(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    assert validate.main([str(tmp_path)]) == 1


def test_renderer_falls_back_to_kustomize_then_go(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"kustomize": "/bin/kustomize", "go": "/bin/go"}
    monkeypatch.setattr(validate.shutil, "which", found.get)
    assert validate._kustomize_command(KUSTOMIZE_DIR)[:2] == ["/bin/kustomize", "build"]
    del found["kustomize"]
    command = validate._kustomize_command(KUSTOMIZE_DIR)
    assert command[:3] == ["/bin/go", "run", validate.KUSTOMIZE_MODULE]
    del found["go"]
    monkeypatch.setattr(validate, "GO_FALLBACKS", ())
    with pytest.raises(validate.RenderError):
        validate._kustomize_command(KUSTOMIZE_DIR)


# ---------------------------------------------------------------- the manifests


def test_everything_in_one_namespace(resources: list[dict[str, Any]]) -> None:
    assert set(_by_kind(resources, "Namespace")) == {"tokenline"}
    for r in resources:
        if r["kind"] != "Namespace":
            assert r["metadata"]["namespace"] == "tokenline", r["metadata"]["name"]


def test_containers_are_locked_down(resources: list[dict[str, Any]]) -> None:
    for name, pod in _pod_specs(resources).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            # A read-only root needs a writable /tmp (the processor's data dir lives there).
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, name
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(limits), name
            assert {"cpu", "memory"} <= set(requests), name
            assert container["image"] == "tokenline:0.1.0", name


def test_deployments_probe_their_metrics_port(resources: list[dict[str, Any]]) -> None:
    ports = {
        "tokenline-processor": 9108,
        "tokenline-sink": 9109,
        "tokenline-alerts": 9110,
        "tokenline-budgets": 9111,
    }
    port_variable = {
        "tokenline-alerts": "TOKENLINE_ALERTS_METRICS_PORT",
        "tokenline-budgets": "TOKENLINE_BUDGETS_METRICS_PORT",
    }
    deployments = _by_kind(resources, "Deployment")
    assert set(deployments) == {*ports, "tokenline-api"}
    deployments.pop("tokenline-api")  # serves HTTP, not metrics: test_api_deployment
    services = {
        s["spec"]["selector"]["app.kubernetes.io/name"]: s
        for s in _by_kind(resources, "Service").values()
    }
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[port_variable.get(name, "TOKENLINE_METRICS_PORT")] == str(ports[name])
        assert container["ports"] == [
            {"name": "metrics", "containerPort": ports[name], "protocol": "TCP"}
        ]
        paths = {
            "startupProbe": "/healthz",
            "readinessProbe": "/readyz",
            "livenessProbe": "/healthz",
        }
        for probe, path in paths.items():
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, name
        service_port = services[name]["spec"]["ports"][0]
        assert (service_port["port"], service_port["targetPort"]) == (ports[name], "metrics")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_processor_hpa(resources: list[dict[str, Any]]) -> None:
    (hpa,) = _by_kind(resources, "HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "tokenline-processor",
    }
    lag, cpu = hpa["spec"]["metrics"]
    # Scaled on the raw topic's lag (the metric the processor exports), CPU as a fallback.
    assert lag["type"] == "External"
    assert lag["external"]["metric"]["name"] == "tokenline_processor_consumer_lag"
    assert "tokenline_processor_consumer_lag" in Metrics().registry._names_to_collectors
    assert cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"]["type"] == "Utilization"
    # More workers than raw-topic partitions would sit idle.
    config = _by_kind(resources, "ConfigMap")["tokenline-config"]["data"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["maxReplicas"] <= int(config["TOKENLINE_TOPIC_PARTITIONS"])
    # The HPA owns the replica count: a replicas field would reset it on every apply.
    assert "replicas" not in _by_kind(resources, "Deployment")["tokenline-processor"]["spec"]


def test_commands_exist(resources: list[dict[str, Any]]) -> None:
    expected = {
        "Deployment/tokenline-processor": ["processor"],
        "Deployment/tokenline-sink": ["sink", "run"],
        "Deployment/tokenline-budgets": ["budgets", "run"],
        "Deployment/tokenline-alerts": ["alerts"],
        "Deployment/tokenline-api": ["api", "serve"],
        "Job/tokenline-migrate": ["sink", "migrate"],
        # A shell line, run by tests/integration/test_deploy_jobs.py:
        "CronJob/tokenline-prices-refresh": None,
    }
    pods = _pod_specs(resources)
    assert set(pods) == set(expected)
    for name, args in expected.items():
        if args is None:
            continue
        (container,) = pods[name]["containers"]
        assert container["args"] == args
        result = CliRunner().invoke(tokenline, [*args, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_settings_names_are_real(resources: list[dict[str, Any]]) -> None:
    config = _by_kind(resources, "ConfigMap")["tokenline-config"]["data"]
    secret = _by_kind(resources, "Secret")["tokenline-secrets"]["stringData"]
    assert set(config) <= PROCESSOR_ENV | SINK_ENV
    assert set(secret) <= PROCESSOR_ENV | SINK_ENV | SDK_ENV
    assert "TOKENLINE_DATABASE_URL" in secret
    assert all("CHANGE-ME" in value for key, value in secret.items() if "PASSWORD" in key)
    assert "CHANGE-ME" in secret["TOKENLINE_DATABASE_URL"]


def test_kafka_security_is_one_consistent_choice(resources: list[dict[str, Any]]) -> None:
    """The ConfigMap's listener and protocol agree; SASL credentials only come with SASL."""
    config = _by_kind(resources, "ConfigMap")["tokenline-config"]["data"]
    secret = _by_kind(resources, "Secret")["tokenline-secrets"]["stringData"]
    assert "TOKENLINE_SECURITY_PROTOCOL" not in secret
    protocol = config["TOKENLINE_SECURITY_PROTOCOL"]
    env = {**config, **secret}
    settings = SinkSettings.model_validate(settings_kwargs(env))
    assert KafkaSecurity.of(settings).problems() == []
    if protocol == "PLAINTEXT":
        assert config["TOKENLINE_BOOTSTRAP_SERVERS"].endswith(":9092")
        assert not [key for key in secret if key.startswith("TOKENLINE_SASL_")]


def test_settings_validate(resources: list[dict[str, Any]]) -> None:
    config = _by_kind(resources, "ConfigMap")["tokenline-config"]["data"]
    secret = _by_kind(resources, "Secret")["tokenline-secrets"]["stringData"]
    deployments = _by_kind(resources, "Deployment")
    parts = (("tokenline-processor", ProcessorSettings), ("tokenline-sink", SinkSettings))
    for name, model in parts:
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {**config, **secret, **{e["name"]: e["value"] for e in container["env"]}}
        settings = model.model_validate(settings_kwargs(env))
        assert settings.metrics_port == int(env["TOKENLINE_METRICS_PORT"])
        assert settings.bootstrap_servers == config["TOKENLINE_BOOTSTRAP_SERVERS"]


def test_api_deployment(resources: list[dict[str, Any]]) -> None:
    """The API listens where its probes and Service look, with settings that validate."""
    deployment = _by_kind(resources, "Deployment")["tokenline-api"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    config = _by_kind(resources, "ConfigMap")["tokenline-config"]["data"]
    secret = _by_kind(resources, "Secret")["tokenline-secrets"]["stringData"]
    settings = ApiSettings.model_validate(settings_kwargs({**config, **secret, **env}))
    assert settings.api_host == "0.0.0.0"
    assert container["ports"] == [
        {"name": "http", "containerPort": settings.api_port, "protocol": "TCP"}
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    service = _by_kind(resources, "Service")["tokenline-api"]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "tokenline-api"}
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert settings.bootstrap_servers == config["TOKENLINE_BOOTSTRAP_SERVERS"]


def test_migrate_job(resources: list[dict[str, Any]]) -> None:
    job = _by_kind(resources, "Job")["tokenline-migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["backoffLimit"] >= 1
    (container,) = job["spec"]["template"]["spec"]["containers"]
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {"tokenline-config", "tokenline-secrets"}
