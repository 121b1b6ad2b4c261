"""The hostile-input checklist (reference/sandbox_perf.md §A.10), row by row, against real
sandboxes: Docker, bubblewrap, and the remote service (whose server runs Docker when an engine
answers). Each test names its row and asserts the exact expected behaviour, that no process of
the code survives the exec, and that the sandbox still works afterwards.

Rows 15-17 (editing tests, forging test output, reading git history) are grading policies of the
SWE environments (issue #4), not sandbox properties. Row 20's "container died", 21 (engine gone
mid-exec), 22 (harness crash) are in test_docker.py / test_bwrap.py; row 23 (flood) in test_pool.py.
Limits (conftest.SMALL): 128 MB memory, 64 pids, 16 MB / 2000-inode tmpfs, 4096-byte output cap.
"""

from __future__ import annotations

import hashlib
import os

import pytest

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
MEMORY_BOMB = "b = []\nwhile True:\n    b.append(bytearray(8 << 20))\n"
SETSID_ESCAPEE = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        for fd in (0, 1, 2):\n"
    "            os.close(fd)\n"
    "        time.sleep(300)\n"
    "    os._exit(0)\n"
    "print('parent done')\n"
)


def needs_tmpfs_caps(sb) -> None:
    """Without root, bubblewrap has no size/inode-capped tmpfs (rlimits only): rows 9-10 do not apply."""
    if sb.kind != "docker" and os.geteuid() != 0:
        pytest.skip("bubblewrap without root enforces rlimits only (no tmpfs size/inode caps)")


def still_works(sb) -> None:
    r = sb.exec("echo ok")
    assert (r.exit_code, r.stdout) == (0, "ok\n"), r


def test_row01_infinite_loop_is_killed_at_the_timeout(any_sb, leftovers):
    r = any_sb.exec(["python3", "-c", "while True: pass"], timeout=1)
    assert r.timed_out and r.exit_code == 137 and not r.oom_killed
    assert 0.9 <= r.duration < 6, r.duration  # killed at T (+ engine overhead), not left running
    assert leftovers(any_sb) == []
    still_works(any_sb)


def test_row02_stdin_is_closed_and_blocking_sleep_times_out(any_sb, leftovers):
    r = any_sb.exec(["python3", "-c", "input()"], timeout=5)
    assert r.exit_code == 1 and not r.timed_out and "EOFError" in r.stderr
    r = any_sb.exec("cat; echo after-cat", timeout=5)
    assert (r.exit_code, r.stdout, r.timed_out) == (0, "after-cat\n", False)
    r = any_sb.exec(["python3", "-c", "import time; time.sleep(1e9)"], timeout=1)
    assert r.timed_out and r.exit_code == 137
    assert leftovers(any_sb) == []


def test_row03_fork_bomb_is_contained_and_reaped(any_sb, leftovers):
    host_procs = len([d for d in os.listdir("/proc") if d.isdigit()])
    r = any_sb.exec(["python3", "-c", FORK_BOMB], timeout=2)
    assert r.timed_out and r.exit_code == 137
    assert leftovers(any_sb) == []
    after = len([d for d in os.listdir("/proc") if d.isdigit()])
    assert after < host_procs + 64  # the pids limit (64) bounded it; nothing of it survives
    still_works(any_sb)


def test_row04_fork_once_returns_and_the_child_dies_with_the_exec(any_sb, leftovers):
    r = any_sb.exec("sleep 300 & echo started", timeout=20)
    assert (r.exit_code, r.stdout, r.timed_out) == (0, "started\n", False)
    assert r.duration < 10  # returned when the shell exited, not when the child would have
    assert leftovers(any_sb) == []


def test_row05_setsid_double_fork_escapee_is_killed_without_zombies(any_sb, leftovers):
    r = any_sb.exec(["python3", "-c", SETSID_ESCAPEE], timeout=20)
    assert (r.exit_code, r.stdout, r.timed_out) == (0, "parent done\n", False)
    assert leftovers(any_sb) == []  # neither the sleeping session leader nor a zombie


def test_row06_memory_bomb_is_oom_killed_and_reported(any_sb):
    r = any_sb.exec(["python3", "-c", MEMORY_BOMB], timeout=20)
    if getattr(any_sb, "enforcement", "cgroup").endswith("rlimit"):  # bwrap without root: RLIMIT_AS
        assert r.exit_code == 1 and "MemoryError" in r.stderr
    else:
        assert r.oom_killed and r.exit_code == 137 and not r.timed_out, r
    still_works(any_sb)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_row07_infinite_output_is_capped_and_the_writer_killed(any_sb, leftovers, stream):
    r = any_sb.exec("yes" if stream == "stdout" else "yes >&2", timeout=8)
    text = getattr(r, stream)
    assert r.output_truncated and not r.timed_out and r.exit_code == 137
    assert text.startswith("y\ny\n") and "bytes truncated" in text
    assert len(text.encode()) <= 4096 + 100  # head + marker + tail, never the whole stream
    assert leftovers(any_sb) == []


def test_row08_closed_stdout_then_spin_still_times_out_keeping_partial_output(any_sb, leftovers):
    code = "import os\nprint('partial', flush=True)\nos.close(1)\nos.close(2)\nwhile True: pass\n"
    r = any_sb.exec(["python3", "-c", code], timeout=1)
    assert r.timed_out and r.stdout == "partial\n"
    assert leftovers(any_sb) == []


def test_row09_disk_fill_hits_enospc_on_tmpfs_and_erofs_on_root(any_sb):
    needs_tmpfs_caps(any_sb)
    r = any_sb.exec("dd if=/dev/zero of=big bs=1M count=64; df -k . | tail -1; rm -f big", timeout=20)
    assert "No space left on device" in r.stderr
    assert r.stdout.split()[1] == str(16 * 1024)  # the work dir is a 16 MB tmpfs
    r = any_sb.exec("dd if=/dev/zero of=/tmp/big bs=1M count=64; rm -f /tmp/big", timeout=20)
    assert "No space left on device" in r.stderr
    r = any_sb.exec("touch /big; touch /usr/big; touch /var/big", timeout=5)
    assert r.exit_code != 0 and r.stderr.count("Read-only file system") == 3
    still_works(any_sb)


def test_row10_inode_bomb_stops_at_the_inode_limit(any_sb):
    needs_tmpfs_caps(any_sb)
    code = ("import os\nn = 0\ntry:\n    while True:\n        open(f'f{n}', 'w').close()\n        n += 1\n"
            "except OSError as e:\n    print(n, e.errno)\n")
    r = any_sb.exec(["python3", "-c", code], timeout=30)
    count, errno = map(int, r.stdout.split())
    assert errno == 28 and 1900 <= count < 2000  # ENOSPC at nr_inodes=2000
    any_sb.exec("find . -mindepth 1 -delete", timeout=20)
    still_works(any_sb)


def test_row11_12_no_network_no_dns_no_docker_socket(any_sb):
    code = (
        "import socket, os\n"
        "def c(h, p):\n"
        "    try:\n"
        "        socket.create_connection((h, p), timeout=2); return 'CONNECTED'\n"
        "    except OSError as e:\n"
        "        return str(e.errno)\n"
        "try:\n"
        "    socket.getaddrinfo('deb.debian.org', 80); dns = 'RESOLVED'\n"
        "except OSError:\n"
        "    dns = 'nodns'\n"
        "ifs = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])\n"
        "print(c('1.1.1.1', 80), c('169.254.169.254', 80), dns, ','.join(ifs),\n"
        "      os.path.exists('/var/run/docker.sock'), os.path.exists('/run/docker.sock'))\n"
    )
    r = any_sb.exec(["python3", "-c", code], timeout=20)
    assert r.stdout.split() == ["101", "101", "nodns", "lo", "False", "False"], r  # ENETUNREACH


def test_row13_privilege_escalation_fails(any_sb):
    code = (
        "import os\n"
        "try:\n    os.setuid(0); print('ROOT')\nexcept OSError as e:\n    print('setuid-denied')\n"
        "st = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "print(os.getuid(), st['CapEff'].strip(), st['CapBnd'].strip(), st['NoNewPrivs'].strip())\n"
    )
    r = any_sb.exec(["python3", "-c", code], timeout=10)
    assert r.stdout.split() == ["setuid-denied", "10001", "0" * 16, "0" * 16, "1"], r
    r = any_sb.exec("mount -t tmpfs none /tmp 2>&1; echo rc=$?; unshare -U true 2>&1; echo rc=$?", timeout=10)
    assert "rc=0" not in r.stdout, r


def test_row14_system_files_cannot_be_overwritten(any_sb):
    before = any_sb.exec("sha256sum /usr/bin/python3.11 /bin/bash /usr/bin/timeout").stdout
    r = any_sb.exec("cp /bin/true /bin/bash; echo x > /usr/bin/python3.11; rm -f /usr/bin/timeout; "
                    "chmod 777 /etc/passwd", timeout=10)
    assert r.exit_code != 0 and r.stderr.count("Read-only file system") >= 3, r
    assert any_sb.exec("sha256sum /usr/bin/python3.11 /bin/bash /usr/bin/timeout").stdout == before


def test_row18_non_utf8_nul_and_ansi_escapes_are_cleaned(any_sb):
    r = any_sb.exec(r"printf 'A\377\376B\000C\033[31mred\033[0m\007\n'", timeout=10)
    assert r.stdout == "A\ufffd\ufffdBCred\n"


def test_row19_huge_single_line_keeps_head_and_tail(any_sb):
    r = any_sb.exec(["python3", "-c", "print('a' * 40000 + 'END')"], timeout=10)
    assert r.exit_code == 0 and r.output_truncated
    assert r.stdout.startswith("a" * 2000) and r.stdout.endswith("aEND\n") and "bytes truncated" in r.stdout
    assert len(r.stdout) <= 4096 + 100
    r = any_sb.exec(["python3", "-c", "print('b' * 50_000_000)"], timeout=10)
    assert r.output_truncated and len(r.stdout) <= 4096 + 100 and not r.timed_out


def test_row20_killing_pid1_or_everything_leaves_the_sandbox_usable(any_sb, leftovers):
    r = any_sb.exec("kill -9 1; echo rc=$?", timeout=5)
    assert r.stdout.startswith("rc=")
    still_works(any_sb)
    r = any_sb.exec("sleep 100 & kill -9 -1; echo still-here", timeout=10)
    assert not r.timed_out and r.duration < 8  # returns promptly even though it shot its own harness
    assert leftovers(any_sb) == []
    still_works(any_sb)


def test_row24_background_server_dies_with_its_exec_and_is_invisible_elsewhere(any_sb, make_sandbox):
    probe = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', 8123), timeout=2); print('UP')\n"
             "except OSError as e:\n    print('DOWN', e.errno)\n")
    r = any_sb.exec("python3 -m http.server 8123 --bind 127.0.0.1 >/dev/null 2>&1 & "
                    f"for i in 1 2 3 4 5 6 7 8 9 10; do sleep 0.3; python3 -c \"{probe}\" | grep -q UP && break; done; "
                    f"python3 -c \"{probe}\"", timeout=20)
    assert r.stdout.strip() == "UP", r
    assert any_sb.exec(["python3", "-c", probe]).stdout.strip() == "DOWN 111"  # killed with its exec
    other = make_sandbox(any_sb.kind)
    assert other.exec(["python3", "-c", probe]).stdout.strip() == "DOWN 111"


def test_get_files_never_follows_links_or_escapes(any_sb):
    any_sb.exec("mkdir -p d && echo hi > d/ok && ln -sf /etc/passwd link && ln -sf .. up && ln -sf /etc d/etc "
                "&& ln -f d/ok hard 2>/dev/null; true", timeout=10)
    files = any_sb.get_files(["link", "up", "d", "missing"])
    assert files == {"d/ok": b"hi\n"}
    for bad in ["../etc/passwd", "/etc/passwd", "d/../../x"]:
        with pytest.raises(ValueError):
            any_sb.get_files([bad])
        with pytest.raises(ValueError):
            any_sb.put_files({bad: b"x"})
    # writing through a planted symlink lands inside the sandbox, never on the host
    host_passwd = hashlib.sha256(open("/etc/passwd", "rb").read()).hexdigest()
    any_sb.exec("ln -sfn /tmp d/escape", timeout=5)
    any_sb.put_files({"d/escape/planted.txt": b"x"})
    assert hashlib.sha256(open("/etc/passwd", "rb").read()).hexdigest() == host_passwd
    assert not os.path.exists("/tmp/planted.txt")
    any_sb.exec("find . /tmp -mindepth 1 -delete 2>/dev/null; true")
