"""A gateway session (:class:`~turngym.agents.gateway.SessionRecord`) as a learner :class:`Trajectory`.

Pure. The calls of a session become the trajectory's turns, ids exactly as generated:

* **append-only** — every call's prompt starts with the previous call's prompt + completion ids (the
  program sent the conversation back as the model wrote it): ONE token sequence
  (``context="full"``), turn ``k``'s ``prompt_ids`` being only what call ``k`` added;
* otherwise (the program edited or truncated its history, or re-rendering changed the tokens):
  one sequence per call (``context="turn"``), each with its whole prompt — never merged. The
  trajectory's ``info["split"]`` says which.

Rewards: the session's reward is the outcome, on the last turn; with ``call_rewards``, call ``k``'s
reward is turn ``k``'s dense ``call_reward`` component (G-RA gated like any env's turn reward). A
session without a reward (the program failed, timed out or never reported) or without calls is a
``failed`` trajectory — masked by the learner, never scored 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from turngym.agents.gateway import CallRecord, SessionRecord
from turngym.envs.types import StopReason, TurnRecord
from turngym.training.trajectory import Trajectory, Turn


def is_append_only(calls: Sequence[CallRecord]) -> bool:
    """Whether each call's prompt extends the previous call's prompt + completion (token ids)."""
    for prev, call in zip(calls, calls[1:]):
        context = prev.prompt_ids + prev.completion_ids
        if call.prompt_ids[: len(context)] != context:
            return False
    return True


def session_trajectory(record: SessionRecord, *, env_id: str, seed: int, sample_index: int,
                       group_id: str | None = None) -> Trajectory:
    """The :class:`Trajectory` of one session (module docstring for the rules)."""
    trajectory = Trajectory(env_id=env_id, seed=seed, group_id=group_id or f"{env_id}#{seed}", sample_index=sample_index,
                            seat=0, info={"session": record.session_id})
    if record.reward is None or not record.calls:
        trajectory.failed = True
        trajectory.stop_reason = StopReason.ENV_ERROR.value
        trajectory.error = record.error or ("the session made no model calls" if record.reward is not None
                                            else "the session ended without a reward")
        return trajectory
    split = not is_append_only(record.calls)
    trajectory.context = "turn" if split else "full"
    trajectory.info["split"] = split
    stop = StopReason.SOLVED if record.reward > 0 else StopReason.FAILED
    last = len(record.calls) - 1
    previous: list[int] = []
    for k, call in enumerate(record.calls):
        components = {} if record.call_rewards is None else {"call_reward": record.call_rewards[k]}
        outcome = record.reward if k == last else None
        turn_record = TurnRecord(turn=k, seat=0, reward=sum(components.values()) + (outcome or 0.0), components=components,
                                 outcome=outcome, terminated=k == last, stop_reason=stop if k == last else None)
        prompt = call.prompt_ids if split else call.prompt_ids[len(previous):]
        trajectory.turns.append(Turn(prompt_ids=list(prompt), completion_ids=list(call.completion_ids),
                                     logprobs=list(call.logprobs), text=call.text, finish_reason=call.finish_reason,
                                     record=turn_record))
        previous = call.prompt_ids + call.completion_ids
    trajectory.outcome = record.reward
    trajectory.outcomes = {0: record.reward}
    trajectory.stop_reason = stop.value
    return trajectory
