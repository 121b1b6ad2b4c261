"""Whether this machine should run bf16: a short probe in a subprocess, cached per machine.

``model.dtype: auto`` and ``learner.precision: auto`` resolve here (:func:`resolve_precision`).

* **CUDA**: bf16 when ``torch.cuda.is_bf16_supported()``.
* **CPU**: a child process (``python -m turngym.agents.precision``) times a bf16 and an fp32 matmul
  of prefill shape (``2048×576 @ 576×1536``, SmolLM2-135M's MLP), interleaved, best of a few
  repeats. bf16 is chosen only when the child **finishes** (some virtual machines advertise matrix
  units whose instructions fault: the child dies of SIGILL, not the caller), its result **agrees**
  with fp32 (relative Frobenius error ≤ ``tolerance``) and it **beats** fp32 by ``min_speedup``.
  Otherwise fp32, with a one-line notice on stderr naming the reason.

The verdict is cached in ``<cache_root>/precision-probe.json`` (``~/.cache/turngym`` unless
``$TURNGYM_CACHE``/``$XDG_CACHE_HOME`` say otherwise), keyed by CPU model, CPU flags and the torch
version, so a machine probes once. The child's matmul can be altered through its command-line
arguments (``--crash``, ``--perturb``, ``--slowdown``): the tests run the real subprocess failing
in each way.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from turngym.agents.models import cache_root

PROBE_SHAPE = (2048, 576, 1536)
"""``(M, K, N)`` of the probed matmul: a 2048-token prefill through SmolLM2-135M's MLP."""
MIN_SPEEDUP = 1.5
TOLERANCE = 2e-2
TIMEOUT_S = 120.0

RolloutDtype = Literal["fp32", "bf16"]
LearnerPrecision = Literal["fp32", "bf16-autocast", "bf16"]


@dataclass(frozen=True)
class ProbeVerdict:
    """What the probe decided: ``use_bf16`` and why (``reason`` is one line for the notice)."""

    use_bf16: bool
    reason: str
    fp32_s: float | None = None
    bf16_s: float | None = None
    rel_error: float | None = None

    @property
    def speedup(self) -> float | None:
        return self.fp32_s / self.bf16_s if self.fp32_s and self.bf16_s else None


@dataclass(frozen=True)
class Precision:
    """The resolved numerics of a run: the rollout policy's dtype and the learner's mode."""

    rollout: RolloutDtype
    learner: LearnerPrecision

    @property
    def rollout_torch_name(self) -> str:
        """``"float32"`` or ``"bfloat16"`` (the names ``load_policy`` and vLLM take)."""
        return "bfloat16" if self.rollout == "bf16" else "float32"

    @property
    def learner_torch_name(self) -> str:
        """The learner's parameter dtype: bf16 only for pure ``bf16`` (autocast keeps fp32 masters)."""
        return "bfloat16" if self.learner == "bf16" else "float32"

    @property
    def differ(self) -> bool:
        """Whether rollout log-probs and the learner's recomputation come from different numerics:
        every pair but fp32/fp32 and bf16/bf16 (autocast keeps norms, softmax and the loss in fp32)."""
        return (self.rollout, self.learner) not in (("fp32", "fp32"), ("bf16", "bf16"))


def machine_key() -> str:
    """CPU model, a hash of its flags, the architecture and the torch version: one probe each."""
    import torch

    model, flags = platform.processor() or "unknown", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                model = value.strip()
            elif name.strip() in ("flags", "Features") and not flags:
                flags = " ".join(sorted(value.split()))
    except OSError:
        pass
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{model} | flags {digest} | {platform.machine()} | torch {torch.__version__}"


def default_cache_path() -> Path:
    return cache_root() / "precision-probe.json"


def run_probe(probe_args: Sequence[str] = (), *, min_speedup: float = MIN_SPEEDUP, tolerance: float = TOLERANCE,
              timeout_s: float = TIMEOUT_S) -> ProbeVerdict:
    """Run the probe child (``python -m turngym.agents.precision *probe_args``) and judge its output."""
    command = [sys.executable, "-m", "turngym.agents.precision", *probe_args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return ProbeVerdict(False, f"the bf16 probe did not finish within {timeout_s:g} s")
    if done.returncode != 0:
        how = (f"was killed by {signal.Signals(-done.returncode).name}" if done.returncode < 0
               else f"exited with status {done.returncode}")
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        return ProbeVerdict(False, f"the bf16 probe {how} {tail[0]}".strip())
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
        fp32_s, bf16_s, err = float(out["fp32_s"]), float(out["bf16_s"]), float(out["rel_error"])
    except (ValueError, KeyError, IndexError) as exc:
        return ProbeVerdict(False, f"the bf16 probe printed no result ({exc})")
    speedup = fp32_s / bf16_s if bf16_s > 0 else 0.0
    if not err <= tolerance:
        return ProbeVerdict(False, f"bf16 disagrees with fp32 (relative error {err:.3g} > {tolerance:g})",
                            fp32_s, bf16_s, err)
    if speedup < min_speedup:
        return ProbeVerdict(False, f"bf16 is not faster ({speedup:.2f}× fp32, needs {min_speedup:g}×)",
                            fp32_s, bf16_s, err)
    return ProbeVerdict(True, f"bf16 matmul {speedup:.1f}× fp32, relative error {err:.2g}", fp32_s, bf16_s, err)


def cpu_verdict(*, cache: Path | None = None, refresh: bool = False, probe_args: Sequence[str] = (),
                min_speedup: float = MIN_SPEEDUP, tolerance: float = TOLERANCE) -> ProbeVerdict:
    """The cached verdict for this machine, probing (and caching) when there is none or ``refresh``."""
    path = cache or default_cache_path()
    key = machine_key()
    entries: dict = {}
    if path.exists():
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}  # a damaged cache is re-probed, not an error
    if not refresh and isinstance(entries.get(key), dict):
        try:
            return ProbeVerdict(**entries[key])
        except TypeError:
            pass
    verdict = run_probe(probe_args, min_speedup=min_speedup, tolerance=tolerance)
    entries[key] = asdict(verdict)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1) + "\n")
        tmp.replace(path)
    except OSError:
        pass  # read-only home: probe again next time
    return verdict


@functools.lru_cache(maxsize=8)
def bf16_verdict(device: str = "cpu") -> ProbeVerdict:
    """Whether ``device`` should run bf16 (memoised per process; on CPU the cached probe)."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ProbeVerdict(ok, "CUDA bf16 " + ("supported" if ok else "not supported by this GPU"))
    if kind != "cpu":
        return ProbeVerdict(False, f"no bf16 probe for device {device!r}")
    return cpu_verdict()


@functools.lru_cache(maxsize=32)
def resolve_precision(model_dtype: str, learner_precision: str, device: str = "cpu") -> Precision:
    """Turn the config's choices (``auto`` included) into a :class:`Precision` (memoised: one notice).

    ``model.dtype: auto`` → bf16 when :func:`bf16_verdict` says so; ``learner.precision: auto`` →
    ``bf16-autocast`` then (fp32 master weights and optimizer state). Falling back to fp32 prints one
    line on stderr with the reason.
    """
    aliases = {"float32": "fp32", "bfloat16": "bf16"}
    rollout = aliases.get(model_dtype, model_dtype)
    learner = learner_precision
    if "auto" in (rollout, learner):
        verdict = bf16_verdict(device)
        if not verdict.use_bf16:
            print(f"turngym: running fp32 ({verdict.reason})", file=sys.stderr)
        rollout = ("bf16" if verdict.use_bf16 else "fp32") if rollout == "auto" else rollout
        learner = ("bf16-autocast" if verdict.use_bf16 else "fp32") if learner == "auto" else learner
    if rollout not in ("fp32", "bf16"):
        raise ValueError(f"model.dtype must be auto, fp32 or bf16, got {model_dtype!r}")
    if learner not in ("fp32", "bf16-autocast", "bf16"):
        raise ValueError(f"learner.precision must be auto, fp32, bf16-autocast or bf16, got {learner_precision!r}")
    return Precision(rollout, learner)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ the child
def _probe_main(argv: Sequence[str] | None = None) -> int:
    """The child: time fp32 and bf16 matmuls, compare, print one JSON line.

    ``--crash`` raises SIGILL just before the bf16 matmul (what a faulting matrix instruction does),
    ``--perturb X`` adds ``X``·N(0, 1)·rms to the bf16 result, ``--slowdown N`` runs the bf16 matmul
    N times per timed repeat.
    """
    parser = argparse.ArgumentParser(prog="python -m turngym.agents.precision")
    parser.add_argument("--shape", type=int, nargs=3, default=list(PROBE_SHAPE), metavar=("M", "K", "N"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--perturb", type=float, default=0.0)
    parser.add_argument("--slowdown", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    m, k, n = args.shape
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
    a16, b16 = a.bfloat16(), b.bfloat16()
    if args.crash:
        os.kill(os.getpid(), signal.SIGILL)
    exact = a @ b
    approx = (a16 @ b16).float()
    if args.perturb:
        approx = approx + args.perturb * exact.pow(2).mean().sqrt() * torch.randn(approx.shape, generator=gen)
    rel_error = float((approx - exact).norm() / exact.norm())
    best = {"fp32": float("inf"), "bf16": float("inf")}
    for _ in range(args.repeats):  # interleaved: shared load hits both arms alike
        start = time.perf_counter()
        a @ b
        best["fp32"] = min(best["fp32"], time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(args.slowdown):
            a16 @ b16
        best["bf16"] = min(best["bf16"], time.perf_counter() - start)
    print(json.dumps({"fp32_s": best["fp32"], "bf16_s": best["bf16"], "rel_error": rel_error,
                      "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main())
