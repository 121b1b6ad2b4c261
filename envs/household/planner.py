"""ALFWorld's planner expert, run where a runaway search can be stopped.

:func:`solve` asks fast-downward (through TextWorld's PDDL engine, names demangled by ALFWorld's
``AlfredDemangler``) for a plan from the initial state, replays it in the engine and returns it only
if the replay ends with ``won``. The search runs in a child process (``python -m
turngym.envs.household.planner``, JSON lines on stdin/stdout) because fast-downward's optimal search
occasionally explodes on kitchens with many closed cabinets and a C call cannot be interrupted
in-process: after :data:`PLANNER_TIMEOUT_S` the child is killed and the problem counts as unsolved.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from typing import Any

PLANNER_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 60.0


class Verifier:
    """One TextWorld PDDL engine (one copy of fast-downward's library) reused for every game."""

    def __init__(self) -> None:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs.pddl import PddlEnv

        from turngym.envs.household.engine import install_caches

        install_caches()
        self.raw = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True))
        self.env = AlfredDemangler()(self.raw)

    def solve(self, game: dict[str, Any], planning_problem: str | None = None) -> list[str] | None:
        """Plan on ``planning_problem`` (default: the game's own problem), named and replayed in ``game``."""
        from textworld.envs.pddl import logic as pddl_logic

        self.env.load(game)  # demangles the full game's names into self.raw._entity_infos
        infos = dict(self.raw._entity_infos)
        if planning_problem is not None:
            state = pddl_logic.PddlState(self.raw.downward_lib, planning_problem, self.raw._logic)
            plan = list(state.replan(infos) or [])
            state = self.env.reset()  # reloads the full game into the engine
        else:
            state = self.env.reset()
            plan = list(self.raw._pddl_state.replan(infos) or [])
        if not plan:
            return None
        for command in plan:
            if command not in state["admissible_commands"]:
                return None
            state, _, _ = self.env.step(command)
        return plan if state["won"] else None


class PlannerWorker:
    """A child process running :class:`Verifier`; killed and restarted when a search times out."""

    def __init__(self, timeout_s: float = PLANNER_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "turngym.envs.household.planner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        if self._read(STARTUP_TIMEOUT_S) != {"ready": True}:
            self.close()
            raise RuntimeError("the household planner worker did not start (is 'alfworld' installed?)")

    def _read(self, timeout: float) -> Any:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self._proc.stdout.readline()
        return json.loads(line) if line else None

    def solve(self, game: dict[str, Any], planning_problem: str | None = None) -> list[str] | None:
        """The verified plan, or ``None`` when unsolvable, failing, or slower than the timeout."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"game": game, "planning_problem": planning_problem}) + "\n")
        self._proc.stdin.flush()
        reply = self._read(self.timeout_s)
        if reply is None:
            self.close()
            return None
        return reply.get("plan")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
        self._proc = None


_WORKER: PlannerWorker | None = None


def solve(game: dict[str, Any], planning_problem: str | None = None) -> list[str] | None:
    """The planner expert's plan if replaying it in ``game`` wins, else ``None``.

    ``planning_problem``: an equivalent, smaller PDDL problem to search instead of the game's own
    (entity names must be the game's); the plan is still replayed in the full game.
    """
    global _WORKER
    if _WORKER is None:
        _WORKER = PlannerWorker()
    return _WORKER.solve(game, planning_problem)


def _serve() -> None:
    verifier = Verifier()
    out = sys.stdout
    sys.stdout = sys.stderr  # keep library prints off the protocol stream
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply = {"plan": verifier.solve(request["game"], request.get("planning_problem"))}
        except Exception as exc:  # noqa: BLE001 - an engine failure is an answer, not a crash
            reply = {"plan": None, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
