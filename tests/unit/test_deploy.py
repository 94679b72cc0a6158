"""The Kubernetes manifests: every object validates against the official client's schema models
(unknown or misspelled fields are errors), the worker gets what it needs from the downward API and
can write its DiskIO hostPath, and `kubectl kustomize` renders the base and the all-paths overlay.
What the RBAC grants is compared with what the code asks for in test_rbac.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

ROOT = Path(__file__).parent.parent.parent
BASE = ROOT / "deploy" / "base"
COMPONENTS = ROOT / "deploy" / "components"
KIND_MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
}


def _check(data: Any, type_name: str, path: str, problems: list[str]) -> None:
    if data is None:
        return
    lowered = type_name.lower()
    if lowered.startswith("list["):
        for i, item in enumerate(data):
            _check(item, type_name[5:-1], f"{path}[{i}]", problems)
        return
    if lowered.startswith(("dict(", "dict[")):
        inner = type_name[5:-1].split(",", 1)[1].strip()
        for key, value in data.items():
            _check(value, inner, f"{path}.{key}", problems)
        return
    model = getattr(kubernetes.client, type_name, None)
    if model is None:  # str, int, bool, object: scalar leaves
        return
    if not isinstance(data, dict):
        problems.append(f"{path}: expected an object ({type_name})")
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {type_name}")
            continue
        _check(value, model.openapi_types[by_json[key]], f"{path}.{key}", problems)


def _documents(*, components: bool = False) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    paths = sorted(BASE.glob("*.yaml")) + (sorted(COMPONENTS.glob("*/*.yaml")) if components else [])
    for path in paths:
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_manifest_matches_the_kubernetes_schema() -> None:
    problems: list[str] = []
    docs = _documents(components=True)
    assert {d["kind"] for _, d in docs} >= {"DaemonSet", "Deployment", "Service", "Ingress", "Role"}
    for name, doc in docs:
        model = KIND_MODELS.get((doc["apiVersion"], doc["kind"]))
        assert model, f"{name}: no schema for {doc['apiVersion']} {doc['kind']}"
        _check(doc, model, f"{name}:{doc['kind']}/{doc['metadata']['name']}", problems)
    assert problems == []


def test_schema_check_catches_a_misspelled_field() -> None:
    problems: list[str] = []
    _check({"spec": {"template": {"spec": {"containers": [{"name": "x", "imagee": "y"}]}}}},
           "V1DaemonSet", "ds", problems)
    assert problems == ["ds.spec.template.spec.containers[0].imagee: not a field of V1Container"]


def test_worker_is_pinned_to_its_node_and_the_kustomization_lists_everything() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    worker = next(d for _, d in _documents() if d["kind"] == "DaemonSet")
    env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KDOCTOR_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_the_worker_learns_its_addresses_from_the_downward_api_and_reads_the_api() -> None:
    worker = next(d for _, d in _documents() if d["kind"] == "DaemonSet")
    pod = worker["spec"]["template"]["spec"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") or e.get("value")
           for e in pod["containers"][0]["env"]}
    assert env["KDOCTOR_AGENT_ADDRESSES"] == "status.podIPs"   # the agent: its pod IPs, both families
    assert env["KDOCTOR_NODE_ADDRESSES"] == "status.hostIPs"   # NodePort: the node's own addresses
    assert env["KDOCTOR_INVENTORY"] == "kubernetes"            # ConfigMaps and Secrets from the API
    assert pod["serviceAccountName"] == "kdoctor-worker" and pod.get("automountServiceAccountToken", True)
    coordinator = next(d for _, d in _documents() if d["metadata"]["name"] == "kdoctor-coordinator"
                       and d["kind"] == "Deployment")
    assert {"name": "KDOCTOR_INVENTORY", "value": "kubernetes"} in coordinator["spec"]["template"]["spec"][
        "containers"][0]["env"]


def test_the_diskio_host_path_is_handed_to_the_workers_user() -> None:
    worker = next(d for _, d in _documents() if d["kind"] == "DaemonSet")
    pod = worker["spec"]["template"]["spec"]
    user, group = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    assert f"--uid {user}" in (ROOT / "Dockerfile").read_text()  # the image's user
    [init] = pod["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert f"chown {user}:{group} /var/lib/kdoctor" in " ".join(init["command"])
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["hostPath"]["path"] == "/var/lib/kdoctor"
    assert {"name": "data", "mountPath": "/var/lib/kdoctor"} in init["volumeMounts"]


def test_the_exporter_is_one_replica_and_reads_its_token_from_the_secret() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _documents()}
    exporter = docs[("Deployment", "kdoctor-exporter")]
    assert exporter["spec"]["replicas"] == 1  # notifications and series once
    pod = exporter["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    token = env["KDOCTOR_METRICS_TOKEN_FILE"]["value"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if token.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "kdoctor"
    assert [i["key"] for i in volume["secret"]["items"]] == [token.rsplit("/", 1)[1]]
    port = docs[("Service", "kdoctor-exporter")]["spec"]["ports"][0]["port"]
    assert port == int(env["KDOCTOR_METRICS_PORT"]["value"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")
def test_kustomize_renders_the_base() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, check=True).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds.count("Deployment") == 5 and "DaemonSet" in kinds and "Ingress" not in kinds


SENTINEL = BASE.parent / "overlays" / "sentinel"


def test_the_sentinel_overlay_matches_the_schema_and_patches_what_the_base_has() -> None:
    problems: list[str] = []
    models = {**KIND_MODELS, ("apps/v1", "StatefulSet"): "V1StatefulSet"}
    for doc in (d for d in yaml.safe_load_all((SENTINEL / "redis-ha.yaml").read_text()) if d):
        model = models[(doc["apiVersion"], doc["kind"])]
        _check(doc, model, f"redis-ha.yaml:{doc['kind']}/{doc['metadata']['name']}", problems)
    assert problems == []
    kustomization = yaml.safe_load((SENTINEL / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../../base", "redis-ha.yaml"]
    base = {(d["kind"], d["metadata"]["name"]): d for _, d in _documents()}
    roles = 0
    for entry in kustomization["patches"]:
        patch = yaml.safe_load(entry["patch"])
        target = base.get((patch["kind"], patch["metadata"]["name"]))
        assert target is not None, f"the overlay patches {patch['kind']}/{patch['metadata']['name']}, not in the base"
        if patch.get("$patch") == "delete":
            continue
        roles += 1
        (container,) = patch["spec"]["template"]["spec"]["containers"]
        names = [c["name"] for c in target["spec"]["template"]["spec"]["containers"]]
        assert container["name"] in names
        (env,) = container["env"]
        assert env["name"] == "KDOCTOR_BROKER_URL" and env["value"].count("sentinel://") == 3
    # Every role that talks to Redis is pointed at the sentinels.
    assert roles == sum(1 for d in base.values() for c in d.get("spec", {}).get("template", {}).get("spec", {})
                        .get("containers", []) if any(e["name"] == "KDOCTOR_BROKER_URL" for e in c.get("env", [])))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")
def test_the_all_paths_overlay_adds_the_ingress_and_a_load_balancer() -> None:
    overlay = ROOT / "deploy" / "overlays" / "all-paths"
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    assert docs[("Service", "kdoctor-agent")]["spec"]["type"] == "LoadBalancer"
    ingress = docs[("Ingress", "kdoctor-agent")]
    assert ingress["metadata"]["namespace"] == "kdoctor"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/kdoctoragent"
