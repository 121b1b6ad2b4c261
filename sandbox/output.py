"""Output capture for sandbox execs: a head+tail byte cap and a safe decode.

Contract: :class:`OutputCapture` keeps the first ``cap // 2`` and the last ``cap - cap // 2``
bytes of a stream however much is fed to it (memory stays O(cap)); :meth:`OutputCapture.text`
decodes them with :func:`clean_output` and, when bytes were dropped, joins head and tail with a
``[... N bytes truncated ...]`` marker. :func:`clean_output` never raises: invalid UTF-8 becomes
U+FFFD, ANSI escape sequences and control characters other than tab/newline/CR are removed.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_output(data: bytes) -> str:
    """Decode ``data`` as UTF-8 (errors replaced) and strip ANSI escapes and control characters."""
    text = data.decode("utf-8", errors="replace")
    return _CONTROL.sub("", _ANSI.sub("", text))


class OutputCapture:
    """Bounded capture of one output stream (head + tail)."""

    def __init__(self, cap: int) -> None:
        if cap <= 0:
            raise ValueError(f"output cap must be > 0, got {cap!r}")
        self.cap = cap
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            if len(data) >= self.tail_cap:
                self.tail = bytearray(data[-self.tail_cap:])
            else:
                self.tail += data
                excess = len(self.tail) - self.tail_cap
                if excess > 0:
                    del self.tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        if not self.truncated:
            return clean_output(bytes(self.head + self.tail))
        dropped = self.total - len(self.head) - len(self.tail)
        return (clean_output(bytes(self.head)) + f"\n[... {dropped} bytes truncated ...]\n"
                + clean_output(bytes(self.tail)))
