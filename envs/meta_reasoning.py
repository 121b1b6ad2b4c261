"""RLVMR meta-reasoning replies: tagged cognitive steps and their programmatic, verifiable rewards.

RLVMR (Zhang et al., 2025, arXiv:2507.22844) has the agent open each reply with one meta-reasoning
tag — ``<plan>`` (decompose the task), ``<explore>`` (try something new), ``<reflect>`` (diagnose a
mistake), ``<monitor>`` (track progress on a routine step) — followed by the action. Rewards are
rules on the episode's record, never a model's opinion:

* **plan** ``r_plan``: a ``<plan>`` step earns it when the episode succeeds (outcome ≥
  ``success_threshold``); credited on the plan turn itself, so it is known only at the end — the
  :class:`MetaReasoning` wrapper adds it to the final step's record, the trainer-side source
  (``algo.turn_rewards: [{source: rlvmr}]``) to the plan turn.
* **explore** ``r_explore``: an ``<explore>`` step whose action reaches a state the episode has not
  been in before (the env's anchor state, else the observation text).
* **reflect** ``r_reflect``: a ``<reflect>`` step earns it only when the previous action failed
  (``valid_action`` false, or an observation starting ``Nothing happens``) **and** its own action
  differs from that failed one.
* **format** ``r_format`` (≤ 0): a reply without exactly one leading meta tag, or without an action
  after it.
* ``<monitor>`` earns nothing: it is the routine step.

All pure functions of :class:`MetaStep` records; the wrapper and the training source share them.
Components are named ``mr_plan``, ``mr_explore``, ``mr_reflect``, ``mr_format``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import gymnasium

from turngym.envs.types import TurnRecord

TAGS: tuple[str, ...] = ("plan", "explore", "reflect", "monitor")
_TAG_RE = re.compile(r"<(plan|explore|reflect|monitor)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)

FORMAT_HINT = (
    "Start every reply with one meta-reasoning step in tags: <plan>…</plan> to plan the task, "
    "<explore>…</explore> to try something new, <reflect>…</reflect> after a failed action, or "
    "<monitor>…</monitor> on a routine step; then write your action."
)


@dataclass(frozen=True)
class MetaReply:
    """A parsed reply: its meta tag (``None`` when malformed), the tag's text, and the action after it."""

    tag: str | None
    thought: str
    action: str

    @property
    def well_formed(self) -> bool:
        return self.tag is not None and bool(self.action.strip())


def parse_reply(text: str) -> MetaReply:
    """Split a reply into its single leading meta tag and the action (the text after the tag).

    A reply with no tag, or with more than one, is malformed (``tag=None``); its action is the text
    with every tag block removed, so the environment still gets something to parse.
    """
    blocks = list(_TAG_RE.finditer(text))
    stripped = _TAG_RE.sub("", text).strip()
    if len(blocks) != 1 or text[: blocks[0].start()].strip():
        return MetaReply(None, "", stripped)
    block = blocks[0]
    return MetaReply(block.group(1).lower(), block.group(2).strip(), text[block.end():].strip())


@dataclass(frozen=True)
class MetaStep:
    """What the rules read about one turn.

    Attributes:
        text: the reply as generated.
        failed: the action failed (invalid, or the env said nothing happened).
        state_after: the state the action led to (anchor or observation); ``None``: unknown.
    """

    text: str
    failed: bool
    state_after: str | None


@dataclass(frozen=True)
class MetaRewards:
    """RLVMR's reward magnitudes (the paper's are of this order; ``format`` is a penalty)."""

    plan: float = 0.5
    explore: float = 0.3
    reflect: float = 0.5
    format: float = -0.1
    success_threshold: float = 1.0


def _norm(action: str) -> str:
    return " ".join(action.lower().split())


def meta_components(steps: Sequence[MetaStep], start_state: str | None, outcome: float | None,
                    rewards: MetaRewards = MetaRewards()) -> list[dict[str, float]]:
    """The RLVMR components of every turn (module docstring), in turn order.

    ``outcome`` ``None``: the episode is not over yet (no plan reward). Only nonzero components
    appear in a turn's dict.
    """
    replies = [parse_reply(s.text) for s in steps]
    seen = {start_state} if start_state is not None else set()
    success = outcome is not None and outcome >= rewards.success_threshold
    out: list[dict[str, float]] = []
    for k, (step, reply) in enumerate(zip(steps, replies)):
        comps: dict[str, float] = {}
        if not reply.well_formed:
            comps["mr_format"] = rewards.format
        elif reply.tag == "plan" and success:
            comps["mr_plan"] = rewards.plan
        elif reply.tag == "explore" and step.state_after is not None and step.state_after not in seen:
            comps["mr_explore"] = rewards.explore
        elif reply.tag == "reflect" and k > 0 and steps[k - 1].failed \
                and _norm(reply.action) != _norm(replies[k - 1].action):
            comps["mr_reflect"] = rewards.reflect
        if step.state_after is not None:
            seen.add(step.state_after)
        out.append(comps)
    return out


def action_failed(record: TurnRecord, observation: str) -> bool:
    """Whether a turn's action failed: invalid, or answered ``Nothing happens`` (household)."""
    return not record.valid_action or observation.lstrip().startswith("Nothing happens")


class MetaReasoning(gymnasium.Wrapper):
    """The RLVMR reply format on any single-agent text env (household, search…).

    The system prompt gains :data:`FORMAT_HINT`; each reply's meta tag is stripped before the inner
    env sees the action; each step's record gains the RLVMR components of that turn (the plan
    rewards of the episode on its final step, when the outcome is known). ``info["meta_tag"]`` is
    the parsed tag.
    """

    def __init__(self, env: gymnasium.Env, rewards: MetaRewards = MetaRewards()):
        super().__init__(env)
        self.rewards = rewards
        self._steps: list[MetaStep] = []
        self._start: str | None = None

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._steps = []
        self._start = str(info.get("anchor", obs))
        info = dict(info, system_prompt=(str(info.get("system_prompt", "")) + "\n" + FORMAT_HINT).strip())
        return obs, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        reply = parse_reply(str(action))
        obs, _, terminated, truncated, info = self.env.step(reply.action)
        record: TurnRecord = info["turn"]
        done = terminated or truncated
        state = info.get("anchor", obs)
        self._steps.append(MetaStep(str(action), action_failed(record, obs), None if state is None else str(state)))
        comps = meta_components(self._steps, self._start, record.outcome if done else None, self.rewards)
        extra = dict(comps[-1])
        if done:  # plan turns are credited once the outcome is known: on the final step
            plan = sum(c.get("mr_plan", 0.0) for c in comps[:-1])
            if plan:
                extra["mr_plan"] = extra.get("mr_plan", 0.0) + plan
        components = {**record.components, **extra}
        new = replace(record, components=components, reward=record.reward + sum(extra.values()))
        return obs, new.reward, terminated, truncated, dict(info, turn=new, meta_tag=reply.tag)


__all__ = [
    "FORMAT_HINT",
    "TAGS",
    "MetaReasoning",
    "MetaReply",
    "MetaRewards",
    "MetaStep",
    "action_failed",
    "meta_components",
    "parse_reply",
]
