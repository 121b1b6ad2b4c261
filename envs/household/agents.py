"""Scripted agents of the household family (``turngym eval … --agent expert``).

``expert`` is ALFWorld's planner expert: it plays :meth:`expert_plan` — the fast-downward plan
verified at generation time while the episode follows it, a fresh plan from the current state
otherwise. ``random`` needs no entry here: turngym's ``SampleValidAgent`` plays a uniformly random
admissible command through ``sample_valid_action``.
"""

from __future__ import annotations


class PlannerExpert:
    """Direct agent: the next command of the planner's plan (``look`` if the planner finds none)."""

    name = "expert"

    def reset(self, seed: int | None = None) -> None:
        """Stateless: the plan lives in the environment."""

    def __call__(self, env) -> str:
        plan = env.expert_plan()
        return plan[0] if plan else "look"


def expert(seed: int | None = None) -> PlannerExpert:
    """Factory named in the household ids' ``agents`` (``seed`` is unused: the expert is deterministic)."""
    return PlannerExpert()
