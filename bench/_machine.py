"""What else the machine was doing during a benchmark: load averages and ``/proc/stat`` CPU shares.

The benchmarks that compare threads or processes (``async``, ``ddp``) depend on free cores; on a
shared machine, record how busy it was::

    probe = MachineProbe()
    ...  # the measurement
    result["machine"] = probe.finish()
"""

from __future__ import annotations

import os
import platform
from typing import Any


def _cpu_ticks() -> list[int] | None:
    """The aggregate ``cpu`` line of ``/proc/stat`` (user nice system idle iowait irq softirq steal …); None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None


class MachineProbe:
    """Load averages and CPU ticks at construction; :meth:`finish` returns them with the end's."""

    def __init__(self) -> None:
        self._load = os.getloadavg()
        self._ticks = _cpu_ticks()

    def finish(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "loadavg_before": [round(x, 2) for x in self._load],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        end = _cpu_ticks()
        if self._ticks is not None and end is not None:
            delta = [b - a for a, b in zip(self._ticks, end, strict=False)]
            total = sum(delta) or 1
            idle = delta[3] + (delta[4] if len(delta) > 4 else 0)
            out["cpu_busy_share"] = round(1 - idle / total, 3)  # of all cores, every process (this run's included)
            out["cpu_steal_share"] = round(delta[7] / total, 3) if len(delta) > 7 else None
        return out
