"""Registration of the ``turngym/…`` ids of this family. Imported by :mod:`turngym.envs.builtin`.

Keep this module import-light: entry points are ``"module:Class"`` strings, loaded on ``make``.
Gate thresholds sit on the outcome ladder of :mod:`turngym.envs.swe.rewards`
(no submit −1 < empty patch −0.5 < hidden tests fail 0 < hidden tests pass 1).
"""

from __future__ import annotations

from turngym.envs.registration import register

_ENTRY = "turngym.envs.swe.env:RepairEnv"
_AGENTS = {"oracle": "turngym.envs.swe.agents:oracle", "noop": "turngym.envs.swe.agents:noop"}
_BOUNDS = (-2.0, 2.0)


def register_ids() -> None:
    """Register CodeRepair-v0 (+ train/dev splits), SWE-v0 (+ Seen/Unseen splits) and SWEBench-v0."""
    for suffix, split, what in (("", "all", "156 sandbox-verified tasks"),
                                ("-train", "train", "the 123 training tasks: HumanEval/n with n % 5 != 0"),
                                ("-dev", "dev", "the 33 held-out tasks: HumanEval/n with n % 5 == 0")):
        register(
            f"turngym/CodeRepair{suffix}-v0", _ENTRY, family="code",
            description=f"Fix a typed-mutation bug in a HumanEval function ({what}; hidden tests)",
            kwargs={"task_set": "coderepair", "split": split}, max_turns=20, invalid_action_allowance=5,
            reward_bounds=_BOUNDS, gate_threshold=0.0, tags=("sandbox", "human-eval"), agents=_AGENTS,
        )
    for suffix, split, what in (("", "all", "all 20"), ("Seen", "seen", "the 14 seen"), ("Unseen", "unseen", "the 6 held-out")):
        register(
            f"turngym/SWE{suffix}-v0", _ENTRY, family="code",
            description=f"Resolve an issue in a multi-file Python repo ({what} project-authored repos; FAIL_TO_PASS/PASS_TO_PASS)",
            kwargs={"task_set": "swe", "split": split}, max_turns=30, invalid_action_allowance=5,
            reward_bounds=_BOUNDS, gate_threshold=0.0, tags=("sandbox", "swe"), agents=_AGENTS,
        )
    register(
        "turngym/SWEBench-v0", _ENTRY, family="code",
        description="SWE-bench-format instances (instances=path.jsonl; default: the local fixture), one image per instance",
        kwargs={"task_set": "swebench"}, max_turns=50, invalid_action_allowance=5, reward_bounds=_BOUNDS,
        gate_threshold=0.0, tags=("sandbox", "swe-bench"), agents=_AGENTS,
    )
