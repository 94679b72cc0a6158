"""AppHttpHealthy spec: kdoctor's fields, our status-code forms, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from kdoctor.errors import SpecError
from kdoctor.probes.httpreq import HttpTarget
from kdoctor.specs import AppHttpHealthy, load_spec
from kdoctor.specs.apphttp import parse_header, status_ranges


def load(target: dict[str, Any], expect: dict[str, Any] | None = None) -> AppHttpHealthy:
    doc = load_spec({"apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "x"},
                     "spec": {"target": target, "expect": expect or {}}})
    assert isinstance(doc, AppHttpHealthy)
    return doc


def problems(target: dict[str, Any], expect: dict[str, Any] | None = None) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        load(target, expect)
    return {p.path: p.message for p in info.value.problems}


def test_status_code_forms() -> None:
    assert status_ranges(200) == [(200, 200)]
    assert status_ranges("2xx") == [(200, 299)]
    assert status_ranges("200-204") == [(200, 204)]
    assert status_ranges([301, "5XX"]) == [(301, 301), (500, 599)]
    ok = load({"host": "h:1"}, {"statusCode": ["2xx", 404]}).spec.expect.success_predicate()
    assert ok(204) and ok(404) and not ok(500) and not ok(302)
    default = load({"host": "h:1"}).spec.expect.success_predicate()
    assert default(200) and default(302) and not default(500) and not default(404)


@pytest.mark.parametrize("bad", ["abc", "6xx", "299-200", 99, [], True, "200-700"])
def test_bad_status_code_is_named(bad: Any) -> None:
    found = problems({"host": "h:1"}, {"statusCode": bad})
    assert list(found) == ["spec.expect.statusCode"]
    assert "2xx" in found["spec.expect.statusCode"] or "100 to 599" in found["spec.expect.statusCode"]


def test_header_value_may_contain_colons() -> None:
    assert parse_header("X-Url: http://a:8080/b") == ("X-Url", "http://a:8080/b")
    doc = load({"host": "h:1", "header": ["Authorization: Bearer a:b", "X-T:12:30"]})
    assert doc.spec.target.headers == (("Authorization", "Bearer a:b"), ("X-T", "12:30"))
    wire = HttpTarget("http://h:1/p?q=1", headers=doc.spec.target.headers).encode()
    assert wire.startswith(b"GET /p?q=1 HTTP/1.1\r\nHost: h:1\r\n")
    assert b"\r\nAuthorization: Bearer a:b\r\n" in wire and b"\r\nX-T: 12:30\r\n" in wire


def test_bad_header_is_named() -> None:
    found = problems({"host": "h:1", "header": ["no colon here"]})
    assert "'Name: value'" in found["spec.target.header"]


def test_body_and_content_length() -> None:
    wire = HttpTarget("http://h/", method="POST", body=b"abc").encode()
    assert wire.endswith(b"Content-Length: 3\r\n\r\nabc")
    assert b"Content-Length" not in HttpTarget("http://h/").encode()
    assert b"Content-Length: 0" in HttpTarget("http://h/", method="PUT").encode()


def test_inconsistent_target_fields_are_refused() -> None:
    two_bodies = problems({"host": "h:1", "body": "a", "bodyFile": "/tmp/b"})
    assert "at most one of body, bodyFile" in two_bodies["spec.target"]
    tls_on_http = problems({"host": "http://h:1", "tlsCaFile": "/ca.crt"})
    assert "tlsCaFile given but host is not https://" in tls_on_http["spec.target"]
    key_only = problems({"host": "https://h:1", "tlsKeyFile": "/k"})
    assert "tlsKeyFile needs tlsCertFile" in key_only["spec.target"]
    method = problems({"host": "h:1", "method": "FETCH"})
    assert "GET" in method["spec.target.method"]


def test_kdoctor_secret_and_configmap_name_local_files(tmp_path: Any) -> None:
    (tmp_path / "ca.crt").write_text("x")
    doc = load({"host": "https://h:1", "tlsSecretName": str(tmp_path), "bodyConfigmapName": "/srv/body.json"})
    assert doc.spec.target.tls_paths() == (str(tmp_path / "ca.crt"), None, None)
    assert doc.spec.target.body_path() == "/srv/body.json"


def test_packaged_example_loads() -> None:
    from importlib import resources

    from kdoctor.specs import load_text

    text = resources.files("kdoctor.examples").joinpath("demo-apphttp.yaml").read_text()
    doc = load_text(text, "demo-apphttp.yaml")
    assert isinstance(doc, AppHttpHealthy)
    assert doc.spec.target.headers == (("X-Kdoctor-Demo", "started at 12:00:00"),)
