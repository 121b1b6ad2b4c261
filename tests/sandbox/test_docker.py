"""Docker-backend specifics on the real engine: container hardening flags, labels and the reaper
(row 22 harness crash), the container dying under an exec (row 20), the engine going away
mid-exec — through a dropping socket proxy and as a real restart of a private dockerd — and a
dead engine socket (row 21), and the client's connection pool (row 23)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from turngym.sandbox.base import SandboxLimits

pytestmark = pytest.mark.docker
SMALL = SandboxLimits(memory_mb=128, pids=64, disk_mb=16, inodes=2000, exec_timeout_s=10, output_bytes=4096)


@pytest.fixture(autouse=True)
def _docker(need_backend):
    need_backend("docker")


def _sandbox(**kw):
    from turngym.sandbox.docker import DockerSandbox

    return DockerSandbox(limits=SMALL, **kw)


def test_container_is_hardened_and_labelled():
    from turngym.sandbox.docker import RUN_ID, docker_client

    with _sandbox() as sb:
        info = docker_client().api.inspect_container(sb.id)
        hc = info["HostConfig"]
        assert hc["NetworkMode"] == "none"
        assert hc["CapDrop"] == ["ALL"] and not hc.get("CapAdd") and not hc["Privileged"]
        assert hc["SecurityOpt"] == ["no-new-privileges"]
        assert hc["ReadonlyRootfs"] is True and hc["Init"] is True
        assert hc["PidsLimit"] == 64
        assert hc["Memory"] == hc["MemorySwap"] == 128 << 20
        assert hc["NanoCpus"] == 1_000_000_000
        assert set(hc["Tmpfs"]) == {"/work", "/tmp"} and "size=16m" in hc["Tmpfs"]["/work"]
        assert "nr_inodes=2000" in hc["Tmpfs"]["/work"]
        assert not info["Config"]["OpenStdin"] and not info["Config"]["Tty"]
        assert not any(m.get("Source", "").endswith("docker.sock") for m in info["Mounts"])
        labels = info["Config"]["Labels"]
        assert labels["turngym.sandbox"] == "1" and labels["turngym.sandbox.run_id"] == RUN_ID
        assert labels["turngym.sandbox.owner_pid"] == str(os.getpid())
        assert sb.exec("id -u").stdout == "10001\n"
    assert not docker_client().api.containers(all=True, filters={"id": sb.id})


def test_client_connection_pool_exceeds_concurrency():
    from turngym.sandbox.docker import docker_client

    adapter = docker_client().api.get_adapter("http+docker://localhost")
    assert adapter.max_pool_size >= 64  # docker-py's default (10) would serialise a flood of execs


def test_reaper_removes_old_containers_by_label_and_age_only():
    from turngym.sandbox.docker import DockerSandbox, docker_client, reap

    tag = uuid.uuid4().hex
    sb = DockerSandbox(limits=SMALL, labels={"turngym.sandbox.test": tag})
    other = _sandbox()
    try:
        assert reap(max_age_s=3600, only={"turngym.sandbox.test": tag}, dead_owners=False) == []
        # old, but its owner (this process) is alive: spared unless asked explicitly
        assert reap(max_age_s=-1, only={"turngym.sandbox.test": tag}) == []
        removed = reap(max_age_s=-1, only={"turngym.sandbox.test": tag}, spare_live_owners=False)
        assert removed == [sb.name]
        assert other.exec("echo alive").stdout == "alive\n"  # untouched: no matching label
        assert not docker_client().api.containers(all=True, filters={"id": sb.id})
    finally:
        sb.close()
        other.close()


CRASHER = """
import os, signal, sys
from turngym.sandbox.docker import DockerSandbox
from turngym.sandbox.base import SandboxLimits
sb = DockerSandbox(limits=SandboxLimits(memory_mb=64))
print(sb.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_row22_harness_crash_leaves_a_container_that_the_reaper_removes():
    from turngym.sandbox.docker import docker_client, reap

    proc = subprocess.run([sys.executable, "-c", CRASHER], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    cid = proc.stdout.split()[0]
    api = docker_client().api
    assert api.containers(all=True, filters={"id": cid}), "the crashed harness should have leaked its container"
    reap(max_age_s=None)  # owner pid is dead -> reaped (what every process does at its first start)
    assert not api.containers(all=True, filters={"id": cid})


def test_row20_container_killed_under_an_exec_raises_sandbox_closed():
    from turngym.sandbox.base import SandboxClosed, SandboxError
    from turngym.sandbox.docker import docker_client

    sb = _sandbox()
    try:
        outcome: list = []

        def run():
            try:
                outcome.append(sb.exec("sleep 30", timeout=30))
            except SandboxError as exc:
                outcome.append(exc)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.5)
        docker_client().api.kill(sb.id)
        t.join(30)
        assert isinstance(outcome[0], SandboxClosed), outcome
        assert "died" in str(outcome[0])
        with pytest.raises(SandboxClosed):
            sb.exec("true")
    finally:
        sb.close()


class UnixProxy:
    """Relays a unix socket to the Docker socket; ``stop()`` drops every connection at once,
    which is what a client sees when the daemon dies mid-exec (without disturbing the real one)."""

    def __init__(self, target: str = "/var/run/docker.sock") -> None:
        self.target = target
        self.path = os.path.join(tempfile.mkdtemp(prefix="dockerproxy-"), "docker.sock")
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(64)
        self.socks: list[socket.socket] = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(self.target)
            self.socks += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while chunk := a.recv(65536):
                b.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.running = False
        self.server.close()
        os.unlink(self.path)
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def exec_interrupted(sb, interrupt) -> object:
    """Start a 30 s exec, call ``interrupt()`` (take the engine away) half a second in, and return
    what the exec gave: an ``ExecResult`` or the ``SandboxError`` it raised. Fails if it hangs."""
    from turngym.sandbox.base import SandboxError

    outcome: list = []

    def run():
        try:
            outcome.append(sb.exec("sleep 30", timeout=30))
        except SandboxError as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    interrupt()
    t.join(60)
    assert not t.is_alive(), "the exec hung after the engine went away"
    return outcome[0]


def test_row21_engine_gone_mid_exec_raises_a_typed_error():
    import docker

    from turngym.sandbox.base import SandboxError
    from turngym.sandbox.docker import DockerSandbox, docker_client

    proxy = UnixProxy()
    client = docker.DockerClient(base_url=f"unix://{proxy.path}", timeout=10)
    sb = DockerSandbox(limits=SMALL, client=client, retries=1)
    try:
        assert sb.exec("echo via-proxy").stdout == "via-proxy\n"
        outcome = [exec_interrupted(sb, proxy.stop)]
        assert isinstance(outcome[0], SandboxError), outcome
        with pytest.raises(SandboxError):
            sb.exec("true")
    finally:
        docker_client().api.remove_container(sb.id, force=True)
        sb._closed = True


def test_row21_dead_engine_socket_gives_a_typed_error_after_bounded_retries():
    import docker

    from turngym.sandbox.base import SandboxError
    from turngym.sandbox.docker import DockerSandbox, docker_client
    from turngym.sandbox.image import image_tag

    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", timeout=5, version="1.41")
    with pytest.raises(SandboxError, match="attempt"):
        DockerSandbox(image=image_tag(), limits=SMALL, client=client, retries=2)
    with pytest.raises(SandboxError, match="dockerd"):
        DockerSandbox(limits=SMALL, client=client)  # image lookup fails first: says how to fix
    with pytest.raises(SandboxError, match="dockerd"):
        docker_client("unix:///nonexistent/docker.sock")


class PrivateEngine:
    """A second, private dockerd (own socket, data-root, exec-root; no bridge, no iptables) that
    this test may stop and restart without touching the shared engine other tests use."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.sock = f"unix://{root}/docker.sock"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["dockerd", "-H", self.sock, "--data-root", f"{self.root}/data", "--exec-root", f"{self.root}/exec",
                "--pidfile", f"{self.root}/docker.pid", "--bridge", "none", "--iptables=false", "--ip-masq=false"]
        self.proc = subprocess.Popen(args, stdout=open(f"{self.root}/dockerd.log", "ab"), stderr=subprocess.STDOUT)
        import docker

        for _ in range(120):
            try:
                docker.DockerClient(base_url=self.sock, timeout=5).ping()
                return
            except Exception:
                time.sleep(0.25)
        raise AssertionError(f"private dockerd did not start; see {self.root}/dockerd.log")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a normal daemon shutdown: it stops its containers
            self.proc.wait(60)


@pytest.mark.slow
def test_row21_real_daemon_restart_mid_exec_is_a_typed_error_and_recovers():
    import shutil

    import docker

    from turngym.sandbox.base import SandboxError
    from turngym.sandbox.docker import DockerSandbox, engine_problem
    from turngym.sandbox.image import ensure_image

    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.skip("needs root and the dockerd binary to run a private engine")
    root = tempfile.mkdtemp(prefix="turngym-dockerd-", dir="/tmp")
    engine = PrivateEngine(root)
    try:
        engine.start()
    except AssertionError as exc:  # e.g. nested container runtimes that allow one engine only
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"a second, private dockerd cannot run here: {exc}")
    try:
        client = docker.DockerClient(base_url=engine.sock, timeout=30, max_pool_size=16)
        ensure_image(client=client)
        sb = DockerSandbox(limits=SMALL, client=client, retries=2)
        assert sb.exec("echo before").stdout == "before\n"
        outcome = [exec_interrupted(sb, engine.stop)]
        assert isinstance(outcome[0], SandboxError) and "engine went away" in str(outcome[0]), outcome
        assert engine.sock in str(outcome[0])
        engine.start()  # the daemon comes back; the old container is gone (no live-restore)
        assert engine_problem(client) is None
        with pytest.raises(SandboxError):
            sb.exec("true")
        sb.close()
        with DockerSandbox(limits=SMALL, client=client) as fresh:  # recovery: new sandboxes work
            assert fresh.exec("echo after").stdout == "after\n"
        assert not client.api.containers(all=True, filters={"label": "turngym.sandbox=1"})
    finally:
        engine.stop()
        subprocess.run(["umount", "-R", "-l", root], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
