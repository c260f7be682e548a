"""The Kubernetes manifests under deploy/kubernetes parse and agree with the image and the settings:
every variable a setting, secrets by Secret reference only, probes on the server's health routes
and the image's port, and the Service, Ingress, HPA and PodDisruptionBudget aimed at the
Deployment. (tests/test_deploy.py covers the image, nginx and compose.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from server.v1.audio import MAX_AUDIO_BYTES
from tests.deploy_files import (
    DEPLOY,
    HEALTH,
    SECRETS,
    SESSION_SECONDS,
    SETTINGS,
    final_stage,
    image_env,
    size_bytes,
    stop_seconds,
)

K8S = DEPLOY / "kubernetes"


def manifests() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def _kind(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def _containers(kind: str, name: str) -> list[dict[str, Any]]:
    spec = _kind(kind, name)["spec"]["template"]["spec"]
    return list(spec["containers"])


def test_every_manifest_parses_and_kustomize_lists_all_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}
    kinds = {d["kind"] for d in manifests()}
    expected = {
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
        "Job",
    }
    assert expected <= kinds


def _env_names(containers: list[dict[str, Any]]) -> set[str]:
    names = {e["name"] for c in containers for e in c.get("env", [])}
    for c in containers:
        for source in c.get("envFrom", []):
            names |= set(_kind("ConfigMap", source["configMapRef"]["name"])["data"])
    return names


def test_kubernetes_sets_only_settings_and_secrets_by_reference() -> None:
    secret = _kind("Secret", "patchbay-secrets")
    for kind, name in (("Deployment", "patchbay"), ("Job", "patchbay-migrate")):
        containers = _containers(kind, name)
        assert _env_names(containers) <= SETTINGS, _env_names(containers) - SETTINGS
        for env in (e for c in containers for e in c.get("env", [])):
            ref = env["valueFrom"]["secretKeyRef"]  # every explicit variable is a secret's
            assert ref["name"] == "patchbay-secrets" and ref["key"] in secret["stringData"]
            assert ref["key"] == env["name"]
    deployment = _containers("Deployment", "patchbay")
    from_secret = {
        e["name"] for c in deployment for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert from_secret >= SECRETS
    assert not SECRETS & set(_kind("ConfigMap", "patchbay-config")["data"])
    assert set(secret["stringData"]) <= SETTINGS


def test_the_deployment_probes_the_health_routes_on_the_images_port_as_non_root() -> None:
    deployment = _kind("Deployment", "patchbay")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert str(port["containerPort"]) == image_env()["PATCHBAY_PORT"]
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz" and probes["livenessProbe"]["path"] == "/healthz"
    assert {p["path"] for p in probes.values()} <= HEALTH
    assert {p["port"] for p in probes.values()} == {port["name"]}
    security = pod["spec"]["securityContext"]
    image_user = [args for op, args in final_stage() if op == "USER"][-1].split(":")[0]
    assert security["runAsNonRoot"] is True and str(security["runAsUser"]) == image_user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # A read-only root: the data directory the image names is a writable volume.
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert image_env()["PATCHBAY_DATA_DIR"] in mounts
    workers = int(_kind("ConfigMap", "patchbay-config")["data"]["PATCHBAY_WORKERS"])
    assert workers == int(container["resources"]["requests"]["cpu"])  # one worker per core


def test_service_ingress_hpa_and_pdb_point_at_the_deployment() -> None:
    pod_labels = _kind("Deployment", "patchbay")["spec"]["template"]["metadata"]["labels"]
    service = _kind("Service", "patchbay")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == _containers("Deployment", "patchbay")[0]["ports"][0]["name"]
    ingress = _kind("Ingress", "patchbay")
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "patchbay" and backend["port"]["name"] == port["name"]
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert all(int(notes[prefix + n]) > SESSION_SECONDS for n in ("proxy-read-timeout", "proxy-send-timeout"))
    assert notes[prefix + "proxy-buffering"] == "off" and notes[prefix + "proxy-http-version"] == "1.1"
    assert size_bytes(notes[prefix + "proxy-body-size"]) > MAX_AUDIO_BYTES
    hpa = _kind("HorizontalPodAutoscaler", "patchbay")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "patchbay"}
    assert hpa["minReplicas"] >= 2 and hpa["metrics"][0]["resource"]["name"] == "cpu"
    pdb = _kind("PodDisruptionBudget", "patchbay")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_a_terminating_pod_gets_longer_than_its_pause_and_drain() -> None:
    pod = _kind("Deployment", "patchbay")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pause = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    drain = _kind("ConfigMap", "patchbay-config")["data"]["PATCHBAY_VOICE_DRAIN_SECONDS"]
    assert pod["terminationGracePeriodSeconds"] > float(pause[1]) + stop_seconds(drain)
