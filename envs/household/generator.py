"""Deterministic generator of ALFRED-style PDDL problems for ALFWorld's six task types.

Contract:

* :func:`sample_spec` ``(split, task_type, index, attempt=0)`` is a pure function: the same arguments
  give the same :class:`ProblemSpec` (floor plan, target, goal receptacle, every object placement,
  agent start) on every machine. It does not run the planner.
* :func:`build_game` turns a spec into ALFWorld's ``game.tw-pddl`` record (``pddl_domain`` from
  ``alfred.pddl``, ``grammar`` from ``alfred.twl2`` with the task sentence filled in, ``pddl_problem``).
* :func:`solve` runs ALFWorld's planner expert (fast-downward through TextWorld's PDDL engine) and
  replays the plan in the engine; it returns the plan only if the replay ends with ``won``.
* Problem ``index`` of a split and task type is the first ``attempt`` (0, 1, 2, …) whose spec the
  planner solves within :data:`MAX_PLAN_LENGTH` commands, so every problem handed out was verified
  solvable at generation time. :class:`ProblemStore` caches them on disk.

Splits: ``seen`` uses ALFRED's training floor plans and the object types outside
:data:`UNSEEN_OBJECT_TYPES`; ``unseen`` uses ALFRED's held-out floor plans and only the object types in
:data:`UNSEEN_OBJECT_TYPES` — targets *and* distractors — so no floor plan or object type of one split
appears in the other. The light sources of ``look_at_obj_in_light`` (desk and floor lamps) are
fixtures shared by both splits. Problems per split and task type are unbounded (any ``index``);
the registered environments use the first :data:`DEFAULT_POOL_SIZE` of each.

Every problem has distractor objects, and every openable receptacle (fridge, cabinet, drawer,
microwave, safe) starts closed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from turngym.envs.household import layouts
from turngym.envs.household.layouts import (
    ALFRED_TASK_NAMES,
    TASK_TYPES,
    TOGGLE_TYPES,
    TRANSFORM_APPLIANCE,
    TRANSFORM_PROPERTY,
    FloorPlan,
)

GENERATOR_VERSION = 1
SPLITS = ("seen", "unseen")
MAX_PLAN_LENGTH = 40
"""Plans longer than this are rejected (the default turn limit is 50)."""
MAX_ATTEMPTS = 50
DEFAULT_POOL_SIZE = 500
"""Problems per split and task type used by the registered ids (3,000 per split over the six types)."""

UNSEEN_OBJECT_TYPES = frozenset({
    # kitchen
    "Potato", "Cup", "Pan", "Spatula", "Ladle", "SaltShaker",
    # living room
    "KeyChain", "Watch", "Newspaper",
    # bedroom
    "CD", "Pencil", "BaseballBat",
    # bathroom
    "SoapBar", "Plunger",
})
"""Object types held out of the ``seen`` split; the ``unseen`` split uses only these."""

LAMP_RECEPTACLES = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand", "Cabinet")
"""Receptacle types a lamp may stand on, in order of preference (non-openable ones only are used)."""

DOMAIN_CONSTANT_TYPES = {"rtype": ("SinkBasin", "Microwave", "Fridge"), "otype": ("Knife", "ButterKnife")}
"""Types named as constants in ``alfred.pddl``'s preconditions; every problem must declare them."""


class GenerationError(RuntimeError):
    """No solvable problem could be generated for the requested (split, task type, index)."""


# ==== splits ====================================================================================
def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _check_task(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")


def split_floor_plans(split: str) -> tuple[int, ...]:
    """Floor plan numbers of a split: ALFRED's training scenes (seen) or its held-out scenes (unseen)."""
    _check_split(split)
    rules, plans = layouts.constants(), layouts.floor_plans()
    scenes = rules.train_scenes if split == "seen" else rules.test_scenes
    return tuple(sorted(n for n in scenes if n in plans))


def split_object_types(split: str) -> frozenset[str]:
    """Pickupable object types of a split (disjoint between the two splits)."""
    _check_split(split)
    pickupable = layouts.constants().pickupable
    return pickupable & UNSEEN_OBJECT_TYPES if split == "unseen" else pickupable - UNSEEN_OBJECT_TYPES


# ==== specs =====================================================================================
@dataclass(frozen=True)
class PlacedObject:
    """An object instance: ALFRED-style id, object type, and the id of the receptacle holding it."""

    id: str
    otype: str
    receptacle: str


@dataclass(frozen=True)
class ProblemSpec:
    """Everything that defines one problem; :meth:`to_pddl` renders it."""

    split: str
    task_type: str
    index: int
    attempt: int
    floor_plan: int
    target: str  # object type to manipulate
    parent: str | None  # goal receptacle type (None for look_at_obj_in_light)
    toggle: str | None  # lamp type (look_at_obj_in_light only)
    objects: tuple[PlacedObject, ...]
    agent_point: tuple[int, int, int, int]
    description: str  # the task sentence, e.g. "put a clean mug in coffeemachine"

    @property
    def name(self) -> str:
        return f"{self.split}-{self.task_type}-{self.index:05d}"

    @property
    def object_types(self) -> frozenset[str]:
        """Pickupable object types in the problem (lamps excluded: they are fixtures)."""
        return frozenset(o.otype for o in self.objects if o.otype not in TOGGLE_TYPES)

    def plan(self) -> FloorPlan:
        return layouts.floor_plans()[self.floor_plan]

    def traj_data(self) -> dict[str, Any]:
        """ALFRED's ``traj_data.json`` fields that ALFWorld reads (``task_type``, ``pddl_params``) plus ours."""
        return {
            "task_type": ALFRED_TASK_NAMES[self.task_type],
            "scene": {"floor_plan": self.plan().name},
            "pddl_params": {
                "object_target": self.target,
                "parent_target": self.parent or "",
                "toggle_target": self.toggle or "",
                "mrecep_target": "",
                "object_sliced": False,
            },
            "turngym": {"spec": asdict(self), "generator_version": GENERATOR_VERSION},
        }

    def to_pddl(self) -> str:
        return render_pddl(self)


def _rng(*key: Any) -> np.random.Generator:
    digest = hashlib.sha256(repr(("turngym-household", GENERATOR_VERSION, *key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _holders(plan: FloorPlan, otype: str, exclude: frozenset[str] = frozenset()) -> list[layouts.Receptacle]:
    rules = layouts.constants()
    return [r for r in plan.receptacles if otype in rules.can_contain[r.rtype] and r.rtype not in exclude]


@cache
def task_choices(split: str, task_type: str) -> tuple[tuple[int, str, str], ...]:
    """Every feasible ``(floor_plan, target, parent_or_toggle)`` of a split and task type, sorted.

    Feasible: the room suits the task, the target type is in the floor plan and the split, it has the
    property the task needs, the appliance exists, and the target can start somewhere other than the
    goal receptacle type (and other than the appliance).
    """
    _check_split(split)
    _check_task(task_type)
    rules, plans = layouts.constants(), layouts.floor_plans()
    allowed = split_object_types(split)
    out: list[tuple[int, str, str]] = []
    for number in split_floor_plans(split):
        plan = plans[number]
        if plan.room not in rules.task_rooms[task_type]:
            continue
        targets = sorted(plan.object_types & allowed)
        if task_type in TRANSFORM_PROPERTY:
            appliance = TRANSFORM_APPLIANCE[task_type]
            if appliance not in plan.receptacle_types:
                continue
            targets = [t for t in targets if t in rules.action_objects[TRANSFORM_PROPERTY[task_type]]]
        else:
            appliance = None
        if task_type == "look_at_obj_in_light":
            lamps = sorted(t for t in TOGGLE_TYPES if t in plan.object_types)
            if not lamps or not _lamp_stands(plan):
                continue
            for target in targets:
                if _holders(plan, target):
                    out.extend((number, target, lamp) for lamp in lamps)
            continue
        for target in targets:
            parents = sorted({r.rtype for r in _holders(plan, target)} - {appliance})
            for parent in parents:
                if _holders(plan, target, frozenset({parent, appliance})):
                    out.append((number, target, parent))
    return tuple(out)


def _lamp_stands(plan: FloorPlan) -> list[layouts.Receptacle]:
    rules = layouts.constants()
    for rtype in LAMP_RECEPTACLES:
        stands = [r for r in plan.receptacles if r.rtype == rtype and rtype not in rules.openable]
        if stands:
            return stands
    return []


def _object_id(otype: str, rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        x, y, z = rng.uniform(-4.0, 4.0, size=3)
        oid = f"{otype}|{x:+06.2f}|{abs(y):+06.2f}|{z:+06.2f}"
        if oid not in taken:
            taken.add(oid)
            return oid


def sample_spec(split: str, task_type: str, index: int, attempt: int = 0) -> ProblemSpec:
    """The problem spec for ``(split, task_type, index, attempt)`` — pure and deterministic."""
    if index < 0:
        raise ValueError(f"problem index must be >= 0, got {index!r}")
    choices = task_choices(split, task_type)
    if not choices:
        raise GenerationError(f"no floor plan of split {split!r} supports task type {task_type!r}")
    rng = _rng(split, task_type, index, attempt)
    number, target, third = choices[int(rng.integers(len(choices)))]
    plan = layouts.floor_plans()[number]
    rules = layouts.constants()
    parent = None if task_type == "look_at_obj_in_light" else third
    toggle = third if task_type == "look_at_obj_in_light" else None
    appliance = TRANSFORM_APPLIANCE.get(task_type)

    taken: set[str] = set()
    objects: list[PlacedObject] = []
    # Targets: never already in the goal receptacle type or the appliance.
    n_targets = int(rng.integers(2, 4)) if task_type == "pick_two_obj_and_place" else int(rng.integers(1, 4))
    exclude = frozenset(t for t in (parent, appliance) if t)
    spots = _holders(plan, target, exclude)
    for _ in range(n_targets):
        r = spots[int(rng.integers(len(spots)))]
        objects.append(PlacedObject(_object_id(target, rng, taken), target, r.id))
    # The lamp of look_at_obj_in_light stands on a non-openable receptacle.
    if toggle:
        stands = _lamp_stands(plan)
        r = stands[int(rng.integers(len(stands)))]
        objects.append(PlacedObject(_object_id(toggle, rng, taken), toggle, r.id))
    # Distractors: other object types of the split present in the floor plan.
    others = sorted(t for t in plan.object_types & split_object_types(split) if t != target and _holders(plan, t))
    if others:
        for _ in range(int(rng.integers(3, 9))):
            otype = others[int(rng.integers(len(others)))]
            spots = _holders(plan, otype)
            r = spots[int(rng.integers(len(spots)))]
            objects.append(PlacedObject(_object_id(otype, rng, taken), otype, r.id))
    # Agent starts in the middle of the room, at a point no receptacle uses.
    used = {r.point[:2] for r in plan.receptacles}
    while True:
        x, z = (int(v) for v in rng.integers(-12, 13, size=2))
        if (x, z) not in used:
            break
    agent_point = (x, z, int(rng.choice([0, 90, 180, 270])), 30)

    alfred = ALFRED_TASK_NAMES[task_type]
    templates = rules.goals[alfred]["templates"]
    description = templates[int(rng.integers(len(templates)))].format(
        obj=target.lower(), recep=(parent or "").lower(), toggle=(toggle or "").lower(), mrecep=""
    )
    return ProblemSpec(
        split=split, task_type=task_type, index=index, attempt=attempt, floor_plan=number,
        target=target, parent=parent, toggle=toggle, objects=tuple(objects),
        agent_point=agent_point, description=description,
    )


# ==== PDDL ======================================================================================
_PDDL_CHARS = {"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"}


def pddl_name(alfred_id: str) -> str:
    """ALFRED's mangling of ids into PDDL names (``Apple|+01.00|…`` → ``Apple_bar__plus_01_dot_00…``)."""
    return "".join(_PDDL_CHARS.get(c, c) for c in alfred_id)


def relevant_receptacles(spec: ProblemSpec) -> frozenset[str]:
    """Receptacles a plan can need: those holding a target or the lamp, the goal type, the appliance."""
    keep = {o.receptacle for o in spec.objects if o.otype in (spec.target, spec.toggle)}
    wanted = {spec.parent, TRANSFORM_APPLIANCE.get(spec.task_type)}
    keep |= {r.id for r in spec.plan().receptacles if r.rtype in wanted}
    return frozenset(keep)


def render_pddl(spec: ProblemSpec, relevant_only: bool = False) -> str:
    """The ALFRED-style PDDL problem of ``spec`` (the ``alfred`` domain).

    ``relevant_only`` drops distractor objects and receptacles no plan can need (see
    :func:`relevant_receptacles`): the planner's search space, not the game. Every plan of the pruned
    problem is a plan of the full one with the same cost, since the dropped entities appear in no
    precondition a plan of the goal needs.
    """
    rules = layouts.constants()
    plan = spec.plan()
    receptacles = plan.receptacles
    if relevant_only:
        keep = relevant_receptacles(spec)
        receptacles = tuple(r for r in receptacles if r.id in keep)
        spec = replace(spec, objects=tuple(o for o in spec.objects if o.otype in (spec.target, spec.toggle)))
    otypes = sorted(spec.object_types | {o.otype for o in spec.objects} | {spec.target} | set(DOMAIN_CONSTANT_TYPES["otype"]))
    rtypes = sorted({r.rtype for r in receptacles} | ({spec.parent} if spec.parent else set()) | set(DOMAIN_CONSTANT_TYPES["rtype"]))
    agent_loc = "loc|{}|{}|{}|{}".format(*spec.agent_point)
    locations = sorted({r.location for r in receptacles} | {agent_loc})
    where = {r.id: r for r in receptacles}

    objects = ["agent1 - agent"]
    objects += [f"{t}Type - otype" for t in otypes]
    objects += [f"{t}Type - rtype" for t in rtypes]
    objects += [f"{pddl_name(o.id)} - object" for o in spec.objects]
    objects += [f"{pddl_name(r.id)} - receptacle" for r in receptacles]
    objects += [f"{pddl_name(loc)} - location" for loc in locations]

    init = ["(= (total-cost) 0)", f"(atLocation agent1 {pddl_name(agent_loc)})"]
    for r in receptacles:
        name = pddl_name(r.id)
        init.append(f"(receptacleType {name} {r.rtype}Type)")
        init.append(f"(receptacleAtLocation {name} {pddl_name(r.location)})")
        if r.rtype in rules.openable:
            init.append(f"(openable {name})")
    for o in spec.objects:
        name = pddl_name(o.id)
        init.append(f"(objectType {name} {o.otype}Type)")
        init.append(f"(inReceptacle {name} {pddl_name(o.receptacle)})")
        init.append(f"(objectAtLocation {name} {pddl_name(where[o.receptacle].location)})")
        if o.otype in TOGGLE_TYPES:
            init.append(f"(toggleable {name})")
            continue
        init.append(f"(pickupable {name})")
        for prop, pred in (("Cleanable", "cleanable"), ("Heatable", "heatable"), ("Coolable", "coolable")):
            if o.otype in rules.action_objects[prop]:
                init.append(f"({pred} {name})")
    for rt in rtypes:
        for ot in otypes:
            if ot in rules.can_contain.get(rt, ()):
                init.append(f"(canContain {rt}Type {ot}Type)")

    goal = rules.goals[ALFRED_TASK_NAMES[spec.task_type]]["pddl"]
    goal = goal.format(obj=spec.target, recep=spec.parent or "", toggle=spec.toggle or "", mrecep="").replace("#", "-")
    indent = "\n        "
    return (
        f"(define (problem {spec.name})\n"
        f"    (:domain alfred)\n"
        f"    (:objects{indent}{indent.join(objects)}\n    )\n"
        f"    (:init{indent}{indent.join(init)}\n    )\n"
        f"{goal.rstrip()[:-1].rstrip()}\n"  # the template's last ")" closes (define …)
        "    (:metric minimize (total-cost))\n)\n"
    )


def build_game(spec: ProblemSpec) -> dict[str, Any]:
    """ALFWorld's ``game.tw-pddl`` record for ``spec`` (without ``solvable``/``walkthrough``)."""
    grammar = layouts.grammar_text().replace("UNKNOWN GOAL", spec.description)
    return {"pddl_domain": layouts.domain_text(), "grammar": grammar, "pddl_problem": spec.to_pddl()}


def solve(spec: ProblemSpec, game: dict[str, Any] | None = None) -> list[str] | None:
    """The planner expert's plan for ``spec``, verified by replaying it in the full game; else ``None``.

    The planner searches the relevance-pruned problem (:func:`render_pddl` with ``relevant_only``);
    the plan is named and replayed in the full game (see :func:`planner.solve`).
    """
    from turngym.envs.household import planner

    return planner.solve(game or build_game(spec), render_pddl(spec, relevant_only=True))


# ==== the store =================================================================================
@dataclass(frozen=True)
class Problem:
    """A generated, verified problem on disk: ``game.tw-pddl`` and ``traj_data.json`` in :attr:`directory`."""

    spec: ProblemSpec
    directory: Path
    walkthrough: tuple[str, ...] = field(default=())

    @property
    def game_file(self) -> Path:
        return self.directory / "game.tw-pddl"


@cache
def content_hash() -> str:
    """Cache key: :data:`GENERATOR_VERSION` (bump it whenever generated output changes), the planner
    settings, the installed alfworld version, and the domain, grammar, layouts and constants it reads."""
    import alfworld

    root = layouts.alfworld_root()
    h = hashlib.sha256()
    h.update(repr((GENERATOR_VERSION, MAX_PLAN_LENGTH, MAX_ATTEMPTS, sorted(UNSEEN_OBJECT_TYPES),
                   getattr(alfworld, "__version__", ""))).encode())
    for part in (layouts.domain_text().encode(), layouts.grammar_text().encode(),
                 (root / "gen" / "constants.py").read_bytes(),
                 *(p.read_bytes() for p in sorted((root / "gen" / "layouts").glob("FloorPlan*.json")))):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    base = os.environ.get("TURNGYM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "turngym")
    return Path(base) / "household" / content_hash()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class ProblemStore:
    """Lazily generated, planner-verified problems, cached as ALFWorld game directories.

    Layout: ``<root>/<split>/<task_type>/<index>/{game.tw-pddl,traj_data.json}`` — the layout of
    ALFWorld's official data, so :class:`~turngym.envs.household.env.ALFWorldEnv` loads it too.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def directory(self, split: str, task_type: str, index: int) -> Path:
        return self.root / split / task_type / f"{index:05d}"

    def get(self, split: str, task_type: str, index: int) -> Problem:
        """Problem ``index`` of ``split``/``task_type``; generated and verified on first use."""
        _check_split(split)
        _check_task(task_type)
        directory = self.directory(split, task_type, index)
        game_file, traj_file = directory / "game.tw-pddl", directory / "traj_data.json"
        if game_file.exists() and traj_file.exists():
            traj = json.loads(traj_file.read_text())
            game = json.loads(game_file.read_text())
            return Problem(_spec_from_dict(traj["turngym"]["spec"]), directory, tuple(game.get("walkthrough", ())))
        for attempt in range(MAX_ATTEMPTS):
            spec = sample_spec(split, task_type, index, attempt)
            game = build_game(spec)
            plan = solve(spec, game)
            if plan and len(plan) <= MAX_PLAN_LENGTH:
                game["solvable"] = True
                game["walkthrough"] = plan
                _write_json(traj_file, spec.traj_data())
                _write_json(game_file, game)
                return Problem(spec, directory, tuple(plan))
        raise GenerationError(
            f"no solvable problem for split={split!r} task_type={task_type!r} index={index} after {MAX_ATTEMPTS} attempts"
        )


def _spec_from_dict(d: dict[str, Any]) -> ProblemSpec:
    d = dict(d)
    d["objects"] = tuple(PlacedObject(**o) for o in d["objects"])
    d["agent_point"] = tuple(d["agent_point"])
    return ProblemSpec(**d)


def export_alfworld(store: ProblemStore, split: str, per_type: int, out: str | os.PathLike,
                    alfworld_split: str = "train", task_types: tuple[str, ...] = TASK_TYPES, start: int = 0) -> list[Path]:
    """Copy generated problems into ALFWorld's official data layout and return the game files.

    Writes ``<out>/json_2.1.1/<alfworld_split>/<task>-<target>-None-<parent>-<floor plan>/trial_<name>/``
    with ``game.tw-pddl`` and ``traj_data.json``, so ``ALFWORLD_DATA=<out>`` serves them to
    ``turngym/ALFWorld-v0`` (and to ALFWorld's own loaders).
    """
    written = []
    for task in task_types:
        for index in range(start, start + per_type):
            problem = store.get(split, task, index)
            spec = problem.spec
            folder = "-".join([ALFRED_TASK_NAMES[task], spec.target, "None", spec.parent or spec.toggle or "None",
                               str(spec.floor_plan)])
            target = Path(out) / "json_2.1.1" / alfworld_split / folder / f"trial_{spec.name}"
            _write_json(target / "traj_data.json", json.loads((problem.directory / "traj_data.json").read_text()))
            _write_json(target / "game.tw-pddl", json.loads(problem.game_file.read_text()))
            written.append(target / "game.tw-pddl")
    return written
