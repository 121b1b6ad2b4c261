"""Across-seed statistics of ablation runs: curves, 95 % t-intervals, paired effects and verdicts. Pure.

Intervals are Student-t intervals over seeds (``mean ± t_{0.975, n−1} · s / √n``): a seed is one
independent replicate of the whole run, and the per-seed summaries are few (5) and roughly normal.
An effect pairs the arms by seed (same seed ⇒ same initial weights and tasks), so its interval is
the t-interval of the per-seed differences. Verdicts: ``reproduced`` when the interval excludes 0
on the side the claim predicts, ``not reproduced`` when it excludes 0 on the other side,
``inconclusive`` when it contains 0 (or fewer than two seeds ran); ``measured`` for effects
without a predicted sign.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from turngym.training.ablations.studies import Effect, Window

#: t_{0.975, df} for df = 1..30 (larger df: the normal quantile).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

Rows = list[dict[str, Any]]


def t975(df: int) -> float:
    """The two-sided 95 % Student-t quantile with ``df`` degrees of freedom (``df`` ≥ 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    return _T975[df - 1] if df <= len(_T975) else 1.959963984540054


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the finite ``values``: the 95 % t-interval (a point for one value, nan for none)."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if v.size == 1:
        return mean, mean, mean
    half = t975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def _dense_share(row: Mapping[str, Any]) -> float:
    dense, outcome = row.get("reward/mean_turn_reward", math.nan), row.get("reward/mean_outcome", math.nan)
    total = dense + outcome
    return dense / total if total > 0 else math.nan


def _seat_gap(row: Mapping[str, Any]) -> float:
    return abs(row.get("adv/seat0/mean", math.nan) - row.get("adv/seat1/mean", math.nan))


#: Metrics computed from a metrics.jsonl row rather than read from it.
DERIVED: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "dense_share": _dense_share,  # share of the (ungated) return paid by dense turn rewards
    "adv/seat_gap": _seat_gap,  # |mean advantage of seat 0 − seat 1|
}


def metric_value(row: Mapping[str, Any], metric: str) -> float:
    """``metric`` of one step's row (a :data:`DERIVED` metric is computed); nan when absent."""
    if metric in DERIVED:
        return float(DERIVED[metric](row))
    value = row.get(metric)
    return float(value) if isinstance(value, (int, float)) else math.nan


def curve(runs: Sequence[Rows], metric: str, steps: int) -> np.ndarray:
    """``[seeds, steps]`` values of ``metric`` (nan where a run has no such step)."""
    out = np.full((len(runs), steps), math.nan)
    for s, rows in enumerate(runs):
        for row in rows:
            k = int(row["step"]) - 1
            if 0 <= k < steps:
                out[s, k] = metric_value(row, metric)
    return out


def band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step (column): the across-seed mean and 95 % t-interval of a ``[seeds, steps]`` array."""
    stats = np.array([t_interval(list(values[:, k])) for k in range(values.shape[1])]).reshape(-1, 3)
    return stats[:, 0], stats[:, 1], stats[:, 2]


def window_mean(values: np.ndarray, window: Window) -> np.ndarray:
    """Per seed (row): the nan-mean over the window's steps (module ``Window``)."""
    steps = values.shape[1]
    if window == "first":
        part = values[:, : max(1, round(steps * 0.2))]
    elif window == "last":
        part = values[:, steps - max(1, round(steps * 0.25)):]
    elif window == "all":
        part = values
    else:
        raise ValueError(f"unknown window {window!r}; expected 'first', 'last' or 'all'")
    with warnings.catch_warnings():  # an all-nan row is a nan summary, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(part, axis=1)


@dataclass
class EffectResult:
    """One measured effect: its definition, the per-seed differences, mean and 95 % interval, verdict."""

    name: str
    description: str
    metric: str
    a: str
    b: str
    expected: int
    per_seed: list[float]
    a_mean: float
    b_mean: float
    estimate: float
    ci95: tuple[float, float]
    n_seeds: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(low: float, high: float, expected: int, n: int) -> str:
    """The verdict of an interval against the predicted sign (module docstring)."""
    if not expected:
        return "measured"
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if (expected > 0 and low > 0) or (expected < 0 and high < 0):
        return "reproduced"
    if (expected > 0 and high < 0) or (expected < 0 and low > 0):
        return "not reproduced"
    return "inconclusive"


def measure(effect: Effect, runs: Mapping[str, Sequence[Rows]], steps: int) -> EffectResult:
    """Measure ``effect`` on ``runs`` (arm → one metrics list per seed, seeds in the same order)."""
    a = window_mean(curve(runs[effect.a_arm], effect.metric, steps), effect.a_window)
    b = window_mean(curve(runs[effect.b_arm], effect.metric, steps), effect.b_window)
    n = min(a.size, b.size)
    diffs = [float(x) for x in (a[:n] - b[:n])]
    mean, low, high = t_interval(diffs)
    finite = sum(math.isfinite(d) for d in diffs)
    return EffectResult(
        name=effect.name, description=effect.description, metric=effect.metric,
        a=f"{effect.a_arm} ({effect.a_window})", b=f"{effect.b_arm} ({effect.b_window})", expected=effect.expected,
        per_seed=diffs, a_mean=t_interval(list(a))[0], b_mean=t_interval(list(b))[0],
        estimate=mean, ci95=(low, high), n_seeds=finite, verdict=verdict(low, high, effect.expected, finite),
    )
