"""deploy/: every kustomization builds and validates, the YAML and the Dockerfiles lint clean,
and the manifests agree with the teacher they deploy (its port, health service, settings and
session header)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import generate_latest

from cloud_teacher.metrics.collectors import TeacherMetrics
from cloud_teacher.rpc.server import SERVICE_NAME
from cloud_teacher.settings import ENV_PREFIX, TeacherSettings, load_settings
from relay_common.routing import SESSION_HEADER

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUSTOMIZATIONS = sorted(path.parent for path in DEPLOY.rglob("kustomization.yaml"))
OVERLAYS = sorted(path for path in KUSTOMIZATIONS if path.parent.name == "overlays")
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests support (sleep preStop)
# Custom resources: no schema ships with kubernetes-validate; their controllers validate them.
CUSTOM_GROUPS = ("gateway.networking.k8s.io/", "gateway.envoyproxy.io/")


def _name(folder: Path) -> str:
    return str(folder.relative_to(DEPLOY))


def find_object(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def test_every_overlay_is_found():
    assert {_name(o) for o in OVERLAYS} == {"overlays/example", "overlays/cpu"}


# kubectl's own output style: no leading "---", sequences not indented, files inlined.
BUILT_YAMLLINT_CONFIG = (
    "{extends: default, rules: {document-start: disable, line-length: disable, "
    "indentation: {indent-sequences: false}}}"
)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=_name)
def test_kustomization_builds_lints_and_every_object_validates(folder, kustomize_text, find_tool):
    built = kustomize_text(folder)
    linted = subprocess.run(
        [find_tool("yamllint"), "--strict", "-d", BUILT_YAMLLINT_CONFIG, "-"],
        input=built,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    assert objects
    for obj in objects:
        label = f"{obj['kind']}/{obj['metadata']['name']} in {_name(folder)}"
        if obj["apiVersion"].startswith(CUSTOM_GROUPS):
            print(f"skipped {label}: custom resource ({obj['apiVersion']}), no schema here")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{label} is invalid: {exc.message} at {list(exc.path)}")


def test_yaml_lints_clean(find_tool):
    linted = subprocess.run(
        [find_tool("yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("dockerfile", sorted(DEPLOY.glob("images/*.Dockerfile")), ids=str)
def test_dockerfile_lints_clean(dockerfile, find_tool):
    linted = subprocess.run(
        [find_tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=120
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("overlay", OVERLAYS, ids=_name)
def test_probes_and_services_name_the_port_the_teacher_listens_on(overlay, kustomize, monkeypatch):
    objects = kustomize(overlay)
    config_map = find_object(objects, "ConfigMap", "relay-teacher")
    pod = find_object(objects, "Deployment", "relay-teacher")["spec"]["template"]["spec"]
    settings = _settings_from_environment(config_map["data"], pod, objects, monkeypatch)
    assert settings.host == "0.0.0.0", "the probes and the proxy connect from outside the pod"
    # Not loopback: without this the teacher refuses plaintext (the probes cannot speak TLS).
    assert settings.allow_insecure
    (container,) = (c for c in pod["containers"] if c["name"] == "teacher")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": settings.port, "metrics": settings.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": settings.port, "service": SERVICE_NAME}
    for service in ("relay-teacher", "relay-teacher-headless"):
        spec = find_object(objects, "Service", service)["spec"]
        assert {"name": "grpc", "port": settings.port, "targetPort": "grpc"}.items() <= next(
            p for p in spec["ports"] if p["name"] == "grpc"
        ).items()
    # The pod outlives the preStop pause plus the teacher's own drain.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + settings.grace_seconds


def test_the_gpu_pod_requests_a_gpu_and_shared_memory(kustomize):
    objects = kustomize(DEPLOY / "overlays" / "example")
    pod = find_object(objects, "Deployment", "relay-teacher")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in pod["volumes"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_routes_hash_on_the_session_header(kustomize):
    objects = kustomize(DEPLOY / "overlays" / "example")
    policy = find_object(objects, "BackendTrafficPolicy", "relay-teacher")["spec"]
    assert policy["loadBalancer"]["consistentHash"] == {
        "type": "Header",
        "header": {"name": SESSION_HEADER},
    }
    assert policy["targetRefs"][0]["kind"] == "GRPCRoute"
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(rf"^\s*balance hdr\({SESSION_HEADER}\)$", haproxy, re.MULTILINE)
    assert re.search(r"^\s*hash-type consistent$", haproxy, re.MULTILINE)


def test_the_autoscaler_uses_a_gauge_the_teacher_exports(kustomize):
    objects = kustomize(DEPLOY / "base")
    hpa = find_object(objects, "HorizontalPodAutoscaler", "relay-teacher")["spec"]
    (metric,) = hpa["metrics"]
    name = metric["pods"]["metric"]["name"]
    exported = generate_latest(TeacherMetrics(sessions_held=lambda: 0).registry).decode()
    assert f"# TYPE {name} gauge" in exported.splitlines()


def _settings_from_environment(
    variables: dict[str, str], pod: dict, objects: list[dict], monkeypatch
) -> TeacherSettings:
    """The settings the teacher reads from these variables, as in its pod (a ConfigMap's).

    The API key file is the mounted Secret's: checked to be one of its keys, then left out
    (the settings check that the file exists, and it exists only in the pod)."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    variables = dict(variables)
    key_file = variables.pop(f"{ENV_PREFIX}API_KEY_FILE", None)
    assert key_file is not None, "the teacher must require API keys"
    (container,) = (c for c in pod["containers"] if c["name"] == "teacher")
    (mount,) = (m for m in container["volumeMounts"] if m["name"] == "secrets")
    (volume,) = (v for v in pod["volumes"] if v["name"] == "secrets")
    secret = find_object(objects, "Secret", volume["secret"]["secretName"])
    folder, _, name = key_file.rpartition("/")
    assert folder == mount["mountPath"] and name in secret["stringData"]
    for name, value in variables.items():
        assert name.startswith(ENV_PREFIX), f"{name} is not a teacher setting"
        monkeypatch.setenv(name, value)
    # The model file is on the cluster's volume, not here: its name is checked, not loaded.
    return load_settings()
