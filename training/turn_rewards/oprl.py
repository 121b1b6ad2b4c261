"""OPRL — online process reward learning (Liu et al., 2025, arXiv:2509.19199): an implicit PRM
trained alternately with the policy; component ``oprl``.

The PRM ``π_φ`` is a causal LM over the policy's tokens (by default a copy of the policy's weights at
the start of the run; ``model`` may name a smaller model with the same tokenizer) next to a frozen
reference ``π_ref`` (its initial weights). Every training step, before the policy learns:

1. **Preference pairs** within each GRPO group: every ``(τ⁺, τ⁻)`` of the group's non-failed rollouts
   whose outcomes differ by more than ``margin`` (higher outcome preferred), at most ``max_pairs``
   drawn with the step's seeded RNG.
2. **Trajectory-level DPO** on them, ``updates`` AdamW steps of::

       L(φ) = −mean log σ( β·[log π_φ(τ⁺) − log π_ref(τ⁺)] − β·[log π_φ(τ⁻) − log π_ref(τ⁻)] )

   with ``log π(τ)`` summed over the generated tokens only (observations are the environment's).
3. **Implicit step rewards** of every rollout under the updated PRM::

       r_k = β · Σ_{t ∈ turn k} ( log π_φ(a_t | ·) − log π_ref(a_t | ·) )

   so ``Σ_k r_k`` is exactly the trajectory score DPO trained to order the pair.

The paper uses ``π_θ_old`` (the policy before the round) as the reference; we keep a frozen copy
(the implicit-PRM form of PRIME), which needs no policy forward and makes ``r`` a function of the
PRM alone — with the policy's own initial weights it starts at 0 everywhere. The paper combines a
group-normalised step advantage with the episode advantage, ``A = A^E + α·A^S``; here the rewards
are a dense component, so ``algo.estimator: turn_group`` gives ``Â^O + α·(turn-group-normalised
accumulated r)`` (A²TGPO's form, per turn index rather than over all of a group's steps) and the
outcome-only estimators add ``Σ_k r_k`` to the return. G-RA gates them like any dense term.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of
from turngym.training.turn_rewards.tokens import turn_logprob_sums


@dataclass(frozen=True)
class OPRLOptions:
    model: str = "policy"
    """``policy``: a copy of the rollout policy's weights; else a spec whose tokenizer is the policy's."""
    beta: float = 0.05
    lr: float = 1e-5
    updates: int = 1
    max_pairs: int = 64
    margin: float = 0.0
    grad_clip: float = 1.0
    micro_batch_size: int = 8


def preference_pairs(trajectories: Sequence[Trajectory], margin: float = 0.0) -> list[tuple[int, int]]:
    """``(winner, loser)`` index pairs within each GRPO group, outcomes differing by more than ``margin``."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(trajectories):
        if not t.failed and t.outcome is not None and t.turns:
            groups.setdefault(t.group_key, []).append(i)
    pairs = []
    for members in groups.values():
        for a in members:
            for b in members:
                if trajectories[a].outcome - trajectories[b].outcome > margin:  # type: ignore[operator]
                    pairs.append((a, b))
    return pairs


def dpo_loss(winner: torch.Tensor, loser: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean ``−log σ(β(w − l))`` over pairs of trajectory log-ratios ``w``, ``l`` (``[P]`` each)."""
    return -F.logsigmoid(beta * (winner - loser)).mean()


class OPRLSource(TurnRewardSource):
    name = "oprl"

    def __init__(self, prm: torch.nn.Module, pad_id: int, options: OPRLOptions = OPRLOptions(), seed: int = 0,
                 device: str = "cpu"):
        if options.beta <= 0 or options.lr <= 0 or options.updates < 0 or options.max_pairs < 1:
            raise ValueError(f"oprl needs beta > 0, lr > 0, updates >= 0, max_pairs >= 1; got {options!r}")
        self.prm = prm.train()
        self.reference = copy.deepcopy(prm).eval().requires_grad_(False)
        self.pad_id, self.options, self.seed, self.device = pad_id, options, seed, device
        self.optimizer = torch.optim.AdamW([p for p in self.prm.parameters() if p.requires_grad], lr=options.lr, weight_decay=0.0)

    def _log_ratios(self, trajectories: Sequence[Trajectory], grad: bool) -> list[torch.Tensor]:
        o = self.options
        with torch.no_grad():
            ref = turn_logprob_sums(self.reference, trajectories, self.pad_id, o.micro_batch_size, self.device)
        with torch.set_grad_enabled(grad):
            prm = turn_logprob_sums(self.prm, trajectories, self.pad_id, o.micro_batch_size, self.device)
        return [p - r for p, r in zip(prm, ref)]

    def learn(self, trajectories: Sequence[Trajectory], step: int) -> dict[str, float]:
        o = self.options
        pairs = preference_pairs(trajectories, o.margin)
        if not pairs or not o.updates:
            return {"pairs": float(len(pairs))}
        if len(pairs) > o.max_pairs:
            rng = np.random.default_rng([self.seed, step, 47])
            pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), o.max_pairs, replace=False))]
        used = sorted({i for pair in pairs for i in pair})
        slot = {i: j for j, i in enumerate(used)}
        batch = [trajectories[i] for i in used]
        win = torch.tensor([slot[a] for a, _ in pairs])
        lose = torch.tensor([slot[b] for _, b in pairs])
        accuracy = loss_value = float("nan")
        for update in range(o.updates):
            scores = torch.stack([r.sum() for r in self._log_ratios(batch, grad=True)])
            loss = dpo_loss(scores[win], scores[lose], o.beta)
            if update == 0:
                accuracy = float((scores[win] > scores[lose]).float().mean())
                loss_value = float(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.prm.parameters(), o.grad_clip)
            self.optimizer.step()
        return {"pairs": float(len(pairs)), "dpo_loss": loss_value, "pair_accuracy": accuracy}

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        ratios = self._log_ratios(trajectories, grad=False)
        return [np.full(len(t.turns), np.nan) if t.failed else self.options.beta * r.double().cpu().numpy()
                for t, r in zip(trajectories, ratios)]

    def trajectory_scores(self, trajectories: Sequence[Trajectory]) -> np.ndarray:
        """``[N]`` β·(log π_φ(τ) − log π_ref(τ)) — the sum of each trajectory's step rewards."""
        return np.array([float(r.sum()) for r in self.rewards(trajectories)])

    def state_dict(self) -> dict[str, Any]:
        return {"prm": self.prm.state_dict(), "reference": self.reference.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.prm.load_state_dict(state["prm"])
        self.reference.load_state_dict(state["reference"])
        self.optimizer.load_state_dict(state["optimizer"])


def build(options: Mapping[str, Any], context: SourceContext) -> OPRLSource:
    opts = options_of(OPRLOptions, options, "oprl")
    policy = context.policy
    if opts.model == "policy":
        prm = copy.deepcopy(policy.model)
    else:
        from turngym.agents.factory import load_policy

        other = load_policy(opts.model, device=context.device, seed=context.seed)
        if len(other.tokenizer) != len(policy.tokenizer):
            raise ValueError(f"oprl model {opts.model!r} has a vocabulary of {len(other.tokenizer)} tokens but the policy's has "
                             f"{len(policy.tokenizer)}; the PRM scores the policy's token ids, so it must share its tokenizer")
        prm = other.model
    prm.requires_grad_(True)
    return OPRLSource(prm, policy.pad_token_id, opts, seed=context.seed, device=context.device)
