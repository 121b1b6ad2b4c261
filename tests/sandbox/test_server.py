"""The remote sandbox service over real HTTP: token (401), size (413), quotas (429), client
isolation (404), limit ceilings (400), typed errors mapped back by the client."""

from __future__ import annotations

import pytest
import requests

from turngym.sandbox.base import SandboxConfig, SandboxError, SandboxLimits, SandboxUnavailable
from turngym.sandbox.remote import RemoteSandbox
from turngym.sandbox.server import ServerConfig, ServiceThread

SMALL = SandboxLimits(memory_mb=128, pids=64, disk_mb=16, inodes=2000, exec_timeout_s=10, output_bytes=4096)


@pytest.fixture(scope="module")
def svc(need_backend):
    from turngym.sandbox.docker import engine_problem

    need_backend("remote")
    backend = "docker" if engine_problem() is None else "bwrap"
    cfg = ServerConfig(port=0, tokens=["alice-token", "bob-token"], max_request_bytes=1 << 20, max_sandboxes=2,
                       max_concurrent_execs=1, sandbox=SandboxConfig(backend=backend, limits=SMALL),
                       max_limits=SandboxLimits(memory_mb=256, exec_timeout_s=60))
    with ServiceThread(cfg) as s:
        yield s


def test_missing_or_wrong_token_is_401(svc):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "alice-token"}):
        r = requests.post(svc.url + "/v1/sandboxes", json={}, headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(SandboxUnavailable, match="401"):
        RemoteSandbox(svc.url, token="wrong", limits=SMALL)
    assert requests.get(svc.url + "/v1/health", timeout=30).json()["ok"] is True


def test_oversized_request_is_413(svc):
    with RemoteSandbox(svc.url, token="alice-token", limits=SMALL) as sb:
        r = requests.post(f"{svc.url}/v1/sandboxes/{sb.id}/files", data=b"{" + b" " * (2 << 20) + b"}",
                          headers={"Authorization": "Bearer alice-token", "Content-Type": "application/json"},
                          timeout=30)
        assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLarge"
        with pytest.raises(SandboxError, match="413"):
            sb.put_files({"big.bin": b"x" * (2 << 20)})
        assert sb.exec("echo still-fine").stdout == "still-fine\n"


def test_quota_client_isolation_and_limit_ceiling(svc):
    a1 = RemoteSandbox(svc.url, token="alice-token", limits=SMALL)
    a2 = RemoteSandbox(svc.url, token="alice-token", limits=SMALL)
    try:
        r = requests.post(svc.url + "/v1/sandboxes", json={}, headers={"Authorization": "Bearer alice-token"},
                          timeout=30)
        assert r.status_code == 429 and "quota" in r.json()["error"]["message"]
        with pytest.raises(SandboxError, match="quota"):
            RemoteSandbox(svc.url, token="alice-token", limits=SMALL, retries=0)
        # bob cannot see or touch alice's sandboxes
        r = requests.post(f"{svc.url}/v1/sandboxes/{a1.id}/exec", json={"command": "id"},
                          headers={"Authorization": "Bearer bob-token"}, timeout=30)
        assert r.status_code == 404
        with RemoteSandbox(svc.url, token="bob-token", limits=SMALL) as b:
            assert b.exec("echo bob").stdout == "bob\n"
        with pytest.raises(ValueError, match="memory_mb=4096 exceeds"):
            RemoteSandbox(svc.url, token="bob-token", limits=SandboxLimits(memory_mb=4096))
        with pytest.raises(ValueError, match="network"):
            RemoteSandbox(svc.url, token="bob-token", limits=SandboxLimits(memory_mb=128, network=True))
    finally:
        a1.close()
        a2.close()


def test_bad_payloads_are_typed_400s(svc):
    with RemoteSandbox(svc.url, token="alice-token", limits=SMALL) as sb:
        h = {"Authorization": "Bearer alice-token"}
        for path, body in ((f"/v1/sandboxes/{sb.id}/exec", {"command": 42}),
                           (f"/v1/sandboxes/{sb.id}/files", {"files": {"a": "not base64!"}}),
                           (f"/v1/sandboxes/{sb.id}/files/get", {"paths": "a"}),
                           (f"/v1/sandboxes/{sb.id}/files", {"files": {"../escape": "eA=="}}),
                           (f"/v1/sandboxes/{sb.id}/fork", {"n": 0}),
                           (f"/v1/sandboxes/{sb.id}/exec", {"command": "true", "timeout": "soon"}),
                           (f"/v1/sandboxes/{sb.id}/exec", {"command": "true", "env": {"A": 1}}),
                           (f"/v1/sandboxes/{sb.id}/exec", {"command": "true", "workdir": "rel"})):
            r = requests.post(svc.url + path, json=body, headers=h, timeout=30)
            assert r.status_code == 400 and r.json()["error"]["type"] == "ValueError", (path, r.text)
        r = requests.post(f"{svc.url}/v1/sandboxes/{sb.id}/exec", data=b"not json", headers=h, timeout=30)
        assert r.status_code == 400


def test_non_local_bind_needs_a_token():
    with pytest.raises(ValueError, match="without a token"):
        ServerConfig(host="0.0.0.0")
    assert ServerConfig(host="0.0.0.0", tokens=["t"]).host == "0.0.0.0"


def test_unreachable_service_is_a_typed_error_after_retries():
    with pytest.raises(SandboxError, match="unreachable after 2 attempt"):
        RemoteSandbox("http://127.0.0.1:9", token="t", limits=SMALL, retries=1)
