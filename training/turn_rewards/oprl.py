"""OPRL — online process reward learning (Liu et al., 2025, arXiv:2509.19199): an implicit PRM
trained alternately with the policy; component ``oprl``.

The PRM ``π_φ`` is a causal LM over the policy's tokens (by default a copy of the policy's weights when
RL starts, after any warm-up; ``model`` may name a smaller model with the same tokenizer) next to a frozen
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from turngym.training.precision import learner_precision, set_learner_precision
from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of
from turngym.training.turn_rewards.tokens import backward_turn_logprob_sums, turn_logprob_sums
from turngym.training.update import activation_checkpointing


@dataclass(frozen=True)
class OPRLOptions:
    model: str = "policy"
    """``policy``: a copy of the policy's weights when RL starts (after any warm-up); else a spec whose
    tokenizer is the policy's."""
    beta: float = 0.05
    lr: float = 1e-5
    updates: int = 1
    max_pairs: int = 64
    margin: float = 0.0
    grad_clip: float = 1.0
    micro_batch_size: int = 8
    """Rows per PRM forward when ``micro_batch_tokens`` is unset."""
    micro_batch_tokens: int | None = None
    """Padded tokens per PRM forward (``None``: the run's ``optim.micro_batch_tokens``)."""
    gradient_checkpointing: bool | None = None
    """Activation checkpointing in the PRM's backward (``None``: the run's ``optim.gradient_checkpointing``)."""


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
    """The implicit PRM and its frozen reference (module docstring).

    ``prm`` is the PRM's starting module, or a function returning it, called at first use (the
    trainer passes one that copies the policy, so the PRM starts from the weights RL starts from,
    after any warm-up). The DPO update runs in two passes so that memory holds one micro-batch's
    graph, never the batch's: trajectory scores without a graph, their gradient ``∂L/∂s`` in closed
    form, then :func:`backward_turn_logprob_sums` micro-batch by micro-batch. The reference's sums of
    a batch are computed once and shared by ``learn`` and ``rewards``.
    """

    name = "oprl"

    def __init__(self, prm: torch.nn.Module | Callable[[], torch.nn.Module], pad_id: int,
                 options: OPRLOptions = OPRLOptions(), seed: int = 0, device: str = "cpu"):
        if (options.beta <= 0 or options.lr <= 0 or options.updates < 0 or options.max_pairs < 1
                or (options.micro_batch_tokens is not None and options.micro_batch_tokens < 1)):
            raise ValueError("oprl needs beta > 0, lr > 0, updates >= 0, max_pairs >= 1, micro_batch_tokens >= 1 "
                             f"(or null); got {options!r}")
        self.pad_id, self.options, self.seed, self.device = pad_id, options, seed, device
        self._start = prm
        self._prm: torch.nn.Module | None = None
        self._reference_sums: tuple[Sequence[Trajectory], list[torch.Tensor]] | None = None

    def _ensure(self) -> torch.nn.Module:
        if self._prm is None:
            prm = self._start if isinstance(self._start, torch.nn.Module) else self._start()
            # scores in fp32 (tokens.turn_logprob_sums); a bf16-autocast learner's mark only speeds the backward
            self._bf16_backward = learner_precision(prm) == "bf16-autocast"
            if self._bf16_backward:
                set_learner_precision(prm, "fp32")
            self._prm = prm.train().requires_grad_(True)
            self._frozen = copy.deepcopy(prm).eval().requires_grad_(False)
            self._optimizer = torch.optim.AdamW([p for p in prm.parameters() if p.requires_grad], lr=self.options.lr,
                                                weight_decay=0.0)
        return self._prm

    @property
    def prm(self) -> torch.nn.Module:
        """The implicit PRM π_φ (trained)."""
        return self._ensure()

    @property
    def reference(self) -> torch.nn.Module:
        """π_ref: the PRM's starting weights, frozen."""
        self._ensure()
        return self._frozen

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        self._ensure()
        return self._optimizer

    def _sums(self, model: torch.nn.Module, trajectories: Sequence[Trajectory]) -> list[torch.Tensor]:
        o = self.options
        return turn_logprob_sums(model, trajectories, self.pad_id, o.micro_batch_size, self.device, o.micro_batch_tokens)

    def _reference(self, trajectories: Sequence[Trajectory]) -> list[torch.Tensor]:
        # the batch itself is kept (not its id, which a later batch may reuse); the reference never changes
        if self._reference_sums is None or self._reference_sums[0] is not trajectories:
            self._reference_sums = (trajectories, self._sums(self.reference, trajectories))
        return self._reference_sums[1]

    def _log_ratios(self, trajectories: Sequence[Trajectory]) -> list[torch.Tensor]:
        """Per trajectory ``[n_i]``: Σ_turn (log π_φ − log π_ref), no graph."""
        prm = self._sums(self.prm, trajectories)
        return [p - r for p, r in zip(prm, self._reference(trajectories))]

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
        prm = self.prm
        with activation_checkpointing(prm, bool(o.gradient_checkpointing)):
            for update in range(o.updates):
                # pass 1: scores without a graph (the whole batch, packed as the reference was: at the
                # start PRM and reference score every trajectory identically), and ∂L/∂scores
                ratios = self._log_ratios(trajectories)
                scores = torch.stack([ratios[i].sum() for i in used]).requires_grad_(True)
                loss = dpo_loss(scores[win], scores[lose], o.beta)
                loss.backward()
                if update == 0:
                    accuracy = float((scores[win] > scores[lose]).float().mean())
                    loss_value = float(loss.detach())
                # pass 2: ∂L/∂φ = Σ_i ∂L/∂s_i · ∂s_i/∂φ, one micro-batch's graph at a time
                self.optimizer.zero_grad(set_to_none=True)
                upstream = [torch.full((len(t.turns),), float(g)) for t, g in zip(batch, scores.grad)]
                backward_turn_logprob_sums(prm, batch, upstream, self.pad_id, o.micro_batch_size, self.device,
                                           o.micro_batch_tokens, self._bf16_backward)
                torch.nn.utils.clip_grad_norm_(prm.parameters(), o.grad_clip)
                self.optimizer.step()
        return {"pairs": float(len(pairs)), "dpo_loss": loss_value, "pair_accuracy": accuracy}

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        ratios = self._log_ratios(trajectories)
        self._reference_sums = None  # scored: the next call is another batch
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
    if opts.micro_batch_tokens is None:  # the run's learner memory settings, unless the source sets its own
        opts = replace(opts, micro_batch_tokens=context.micro_batch_tokens)
    if opts.gradient_checkpointing is None:
        opts = replace(opts, gradient_checkpointing=context.gradient_checkpointing)
    if opts.model == "policy":  # copied when RL starts: after the warm-up, from the weights RL starts with
        return OPRLSource(lambda: copy.deepcopy(policy.model), policy.pad_token_id, opts, seed=context.seed, device=context.device)
    from turngym.agents.factory import load_policy

    other = load_policy(opts.model, device=context.device, seed=context.seed)
    if len(other.tokenizer) != len(policy.tokenizer):
        raise ValueError(f"oprl model {opts.model!r} has a vocabulary of {len(other.tokenizer)} tokens but the policy's has "
                         f"{len(policy.tokenizer)}; the PRM scores the policy's token ids, so it must share its tokenizer")
    return OPRLSource(other.model, policy.pad_token_id, opts, seed=context.seed, device=context.device)
