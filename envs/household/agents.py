"""Scripted agents of the household family (``turngym eval … --agent expert``).

``expert`` is ALFWorld's planner expert: it plays :meth:`expert_plan` — the fast-downward plan
verified at generation time while the episode follows it, a fresh plan from the current state
otherwise. It knows where every object is, so its first command ("go to countertop 1", where the
potato happens to be) depends on facts no observation has shown yet.

``explorer`` plays pick-and-place from what the player can see: the task, the admissible commands
(which also tell where the agent stands: the receptacles it can examine) and where its last ``go to``
led (the observation says so). It searches the receptacles in a fixed order — those that show their
contents on arrival first, then the openable ones, each group in the order the commands are listed,
never the goal type — opens a closed one it stands at, takes a target-type object as soon as one can
be taken, then goes to the first goal receptacle and puts it there. No choice depends on a fact the
player has not been shown, so a policy that sees the current observation (``rollout.context: turn``
with the env's ``history``) could imitate it exactly; the planner's first commands depend on where
the objects are, which the player has not seen. It searches, so it needs more turns than the planner and may run
out of them.

``random`` needs no entry here: turngym's ``SampleValidAgent`` plays a uniformly random admissible
command through ``sample_valid_action``.
"""

from __future__ import annotations

import functools
import re

from turngym.envs.household.layouts import constants


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


_RECEPTACLE = re.compile(r"go to (.+)")


def _kind(receptacle: str) -> str:
    """``"cabinet 12"`` → ``"cabinet"`` (the type as commands spell it)."""
    return receptacle.rsplit(" ", 1)[0]


@functools.cache
def _receptacle_kinds() -> tuple[frozenset[str], frozenset[str]]:
    """(every receptacle type, the openable ones), spelled as commands spell them."""
    rules = constants()
    return frozenset(t.lower() for t in rules.can_contain), frozenset(t.lower() for t in rules.openable)


class ObservableExplorer:
    """Direct agent for pick-and-place that uses only what the player observes (module docstring).

    ``__call__(env)`` reads ``env.game.goal`` (the task the player is told) and ``env.admissible_commands``
    (shown in every observation with ``show_admissible``) and returns one of those commands. It also
    remembers the receptacle of its last ``go to``, which the observation states too ("You arrive at
    drawer 2", and the restated history): some receptacles share a spot (a drawer under a cabinet),
    and arriving at one leaves both without a ``go to``, so the admissible commands alone cannot say
    which of them the search reached. Raises ``ValueError`` on any other task type.
    """

    name = "explorer"

    def __init__(self) -> None:
        self._arrived: str | None = None

    def reset(self, seed: int | None = None) -> None:
        """Forget the last destination (a stale one is ignored anyway: it must be where the agent stands)."""
        self._arrived = None

    def __call__(self, env) -> str:
        goal = env.game.goal
        if goal.task_type != "pick_and_place":
            raise ValueError(
                f"the explorer plays pick_and_place only, got task type {goal.task_type!r}; "
                "use the planner `expert` for the other task types"
            )
        command = explore_command(goal.target.lower(), goal.parent.lower(), env.admissible_commands, self._arrived)
        if command.startswith("go to "):
            self._arrived = command.removeprefix("go to ")
        return command


def explore_command(target: str, parent: str, admissible: list[str], arrived: str | None = None) -> str:
    """The explorer's command for a pick-and-place of a ``target`` type into a ``parent`` type. Pure.

    ``admissible``: the commands the env accepts now (types spelled as commands spell them:
    ``"potato"``, ``"sinkbasin"``); ``arrived``: the receptacle of the last ``go to``, where the search
    stands (ignored unless it is one the agent can examine now; then the first of those counts).
    """
    places = [m.group(1) for c in admissible if (m := _RECEPTACLE.fullmatch(c))]
    here = _standing_at(admissible)  # the receptacles at this spot, usually one
    at_goal = [p for p in here if _kind(p) == parent]
    if any(c.startswith((f"examine {target} ", f"move {target} ")) for c in admissible):  # a target in hand
        if at_goal:
            goal = at_goal[0]
            put = [c for c in admissible if c.startswith(f"move {target} ") and c.endswith(f" to {goal}")]
            if put:
                return put[0]
            return f"open {goal}" if f"open {goal}" in admissible else "look"
        goals = [p for p in places if _kind(p) == parent]
        return f"go to {goals[0]}" if goals else "look"
    take = [c for c in admissible if c.startswith(f"take {target} ")]
    if take:
        return take[0]
    closed = [p for p in here if _kind(p) != parent and f"open {p}" in admissible]
    if closed:
        return f"open {closed[0]}"
    openable = _receptacle_kinds()[1]
    order = sorted((p for p in {*places, *here} if _kind(p) != parent),
                   key=lambda p: (_kind(p) in openable, f"go to {p}"))  # the commands' listed order
    anchor = arrived if arrived in here else next((p for p in order if p in here), None)
    ahead = order[order.index(anchor) + 1:] if anchor in order else order
    ahead = [p for p in ahead if p not in here]
    return f"go to {ahead[0]}" if ahead else "look"


def _standing_at(admissible: list[str]) -> list[str]:
    """The receptacles the agent stands at: those it can examine (none at the start, in the middle of
    the room; two where receptacles share a spot). The object in hand can be examined too; its type
    is not a receptacle's."""
    receptacles = _receptacle_kinds()[0]
    names = (c.removeprefix("examine ") for c in admissible if c.startswith("examine "))
    return [name for name in names if _kind(name) in receptacles]


def explorer(seed: int | None = None) -> ObservableExplorer:
    """Factory named in the household ids' ``agents`` (``seed`` is unused: the explorer is deterministic)."""
    return ObservableExplorer()
