"""Pure helpers (no engine): path validation, untrusted tar parsing, output capping/decoding."""

from __future__ import annotations

import io
import tarfile

import pytest

from turngym.sandbox.files import check_rel_path, files_to_tar, safe_member_name, tar_to_files
from turngym.sandbox.output import OutputCapture, clean_output


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "a/..", "x\0y"])
def test_check_rel_path_rejects_escapes(bad):
    with pytest.raises(ValueError, match="sandbox path"):
        check_rel_path(bad)


def test_check_rel_path_normalises():
    assert check_rel_path("./a//b/./c.txt") == "a/b/c.txt"


def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dev": tarfile.CHRTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = data.decode()
                tar.addfile(info)
    return buf.getvalue()


def test_hostile_archive_keeps_only_safe_regular_files():
    data = _tar([
        ("ok.txt", "file", b"ok"), ("./dir/nested.txt", "file", b"n"),
        ("../../etc/cron.d/evil", "file", b"x"), ("/etc/passwd", "file", b"x"), ("a/../../b", "file", b"x"),
        ("link", "sym", b"/etc/shadow"), ("hard", "hard", b"/etc/shadow"), ("dev", "dev", b""),
        ("fifo", "fifo", b""), ("back\\slash", "file", b"x"),
    ])
    assert tar_to_files(data) == {"ok.txt": b"ok", "dir/nested.txt": b"n"}
    assert safe_member_name("a/./b") == "a/b" and safe_member_name("..") is None


def test_files_to_tar_roundtrip_and_rejects_bad_paths():
    files = {"a.txt": b"A", "d/e.bin": bytes(range(256))}
    assert tar_to_files(files_to_tar(files)) == files
    with pytest.raises(ValueError):
        files_to_tar({"../x": b""})
    with pytest.raises(TypeError, match="bytes"):
        files_to_tar({"x": 3})


def test_output_capture_keeps_head_and_tail_in_bounded_memory():
    cap = OutputCapture(100)
    for i in range(10_000):
        cap.add(f"{i:05d}\n".encode())
    text = cap.text()
    assert cap.truncated and cap.total == 60_000
    assert len(cap.head) + len(cap.tail) == 100
    assert text.startswith("00000\n") and text.endswith("09999\n") and "bytes truncated" in text
    small = OutputCapture(100)
    small.add(b"short")
    assert not small.truncated and small.text() == "short"


def test_clean_output_replaces_invalid_utf8_and_strips_controls():
    assert clean_output(b"a\xffb\x00c\x1b[1;31md\x1b]0;title\x07e\tf\r\n") == "a\ufffdbcde\tf\r\n"
