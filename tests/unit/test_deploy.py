"""The Kubernetes manifests: every object validates against the official client's schema models
(unknown or misspelled fields are errors), and `kubectl kustomize` renders the base."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

BASE = Path(__file__).parent.parent.parent / "deploy" / "base"
KIND_MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
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


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_every_manifest_matches_the_kubernetes_schema() -> None:
    problems: list[str] = []
    docs = _documents()
    assert {d["kind"] for _, d in docs} >= {"DaemonSet", "Deployment", "Service"}
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
    assert kinds.count("Deployment") == 5 and "DaemonSet" in kinds
