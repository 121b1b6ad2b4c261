"""IGPO information gain: how much each turn raised the policy's belief in the gold answer.

For a full-context trajectory with a gold answer (``trajectory.info["answer"]``), let ``ℓ_k`` be the
mean log-probability the policy assigns to the answer's tokens when it is teacher-forced right
before turn ``k``'s generation — i.e. after everything the model has seen so far, including the
environment's reply to turn ``k − 1`` (algorithms.md §1.2/§3.1, log-prob-diff mode). Then

    IG_k = ℓ_{k+1} − ℓ_k        for k = 0 … T−2     (turn k's action and the observation it earned)
    IG_{T−1} = nan                                   (the answer turn: credited by the outcome)

``nan`` marks an absent dense value, which the estimators skip. All contexts of a batch are scored in
one batched teacher-forcing pass (``policy.score``), projecting only the answer positions, in the
policy's parameter precision (fp32 for a ``bf16-autocast`` learner: a gain is a difference of two
mean log-probs, which bf16 matmuls bias; see ``training/precision.py``).
"""

from __future__ import annotations

import numpy as np

from turngym.agents.base import Policy
from turngym.training.advantages import information_gain
from turngym.training.trajectory import Trajectory


def turn_contexts(trajectory: Trajectory) -> list[list[int]]:
    """The token context right before each turn's generation (``T`` prefixes of the sequence)."""
    contexts, ids = [], []
    for turn in trajectory.turns:
        ids = ids + list(turn.prompt_ids)
        contexts.append(list(ids))
        ids = ids + list(turn.completion_ids)
    return contexts


def information_gain_rewards(policy: Policy, trajectories: list[Trajectory], mode: str = "logprob") -> list[np.ndarray]:
    """Per-turn IG for every trajectory (``nan`` where undefined: no answer, turn context, failed, last turn)."""
    prompts: list[list[int]] = []
    continuations: list[list[int]] = []
    owners: list[int] = []
    for i, t in enumerate(trajectories):
        answer = t.info.get("answer")
        if t.failed or t.context != "full" or not answer or len(t.turns) < 2:
            continue
        answer_ids = list(policy.tokenizer(str(answer), add_special_tokens=False)["input_ids"])
        for context in turn_contexts(t):
            prompts.append(context)
            continuations.append(answer_ids)
            owners.append(i)
    out = [np.full(len(t.turns), np.nan) for t in trajectories]
    if not prompts:
        return out
    scores = policy.score(prompts, continuations)
    per_traj: dict[int, list[float]] = {}
    for owner, s in zip(owners, scores):
        per_traj.setdefault(owner, []).append(float(np.mean(s)) if len(s) else float("nan"))
    for i, ells in per_traj.items():
        gains = information_gain([np.asarray(ells)], mode=mode)[0]  # T − 1 values
        out[i][: len(gains)] = gains
    return out
