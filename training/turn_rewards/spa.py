"""SPA-RL — stepwise progress attribution (Wang et al., 2025, arXiv:2505.20732); component ``spa``.

A **progress estimator** ``c_ψ`` — a small MLP head on the policy's frozen last hidden state at the
end of each turn's reply — gives every turn a contribution ``c_k``. It is trained by regression so
that a trajectory's contributions add up to its outcome::

    L(ψ) = mean_i ( Σ_k c_ψ(h_{i,k}) − r_high_i )²        (non-failed rollouts of the step)

``epochs`` full-batch Adam steps per training step, the head and its optimizer carried across steps
(and checkpointed). The turn reward is the contribution plus SPA's **grounding** signal, whether the
action was executable in the environment::

    r_k = c_ψ(h_{i,k}) + grounding · 1[turn k's action was valid]

As in the paper the estimator is refit before it scores the batch (alternating with the policy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from turngym.training.trajectory import Trajectory
from turngym.training.turn_rewards.base import SourceContext, TurnRewardSource, options_of
from turngym.training.turn_rewards.tokens import turn_end_hidden


@dataclass(frozen=True)
class SPAOptions:
    hidden: int = 64
    lr: float = 3e-3
    epochs: int = 20
    grounding: float = 0.1
    micro_batch_size: int = 8
    """Rows per hidden-state forward when ``micro_batch_tokens`` is unset."""
    micro_batch_tokens: int | None = None
    """Padded tokens per hidden-state forward (``None``: the run's ``optim.micro_batch_tokens``)."""


class ProgressHead(torch.nn.Module):
    """``[*, H] → [*]``: the per-turn contribution."""

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.LayerNorm(features), torch.nn.Linear(features, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).squeeze(-1)


class SPASource(TurnRewardSource):
    name = "spa"

    def __init__(self, model: torch.nn.Module, pad_id: int, options: SPAOptions = SPAOptions(), seed: int = 0,
                 device: str = "cpu"):
        if options.hidden < 1 or options.lr <= 0 or options.epochs < 0:
            raise ValueError(f"spa needs hidden >= 1, lr > 0, epochs >= 0; got {options!r}")
        self.model, self.pad_id, self.options, self.device = model, pad_id, options, device
        generator_state = torch.get_rng_state()
        torch.manual_seed(seed + 7919)  # the head's initial weights depend on the run's seed only
        self.head = ProgressHead(int(model.config.hidden_size), options.hidden).to(device)
        torch.set_rng_state(generator_state)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=options.lr)
        self._features: tuple[Sequence[Trajectory], list[torch.Tensor]] | None = None

    def _hidden(self, trajectories: Sequence[Trajectory]) -> list[torch.Tensor]:
        # learn and rewards share one forward; the batch itself is kept (not its id, which a later batch may reuse)
        if self._features is None or self._features[0] is not trajectories:
            self._features = (trajectories, turn_end_hidden(self.model, trajectories, self.pad_id,
                                                            self.options.micro_batch_size, self.device,
                                                            self.options.micro_batch_tokens))
        return self._features[1]

    def fit(self, trajectories: Sequence[Trajectory], epochs: int) -> float:
        """``epochs`` regression steps on the batch's non-failed rollouts; returns the last loss (nan: none)."""
        keep = [i for i, t in enumerate(trajectories) if not t.failed and t.outcome is not None and t.turns]
        if not keep or epochs == 0:
            return float("nan")
        hidden = self._hidden(trajectories)
        feats = torch.cat([hidden[i] for i in keep])
        owner = torch.cat([torch.full((len(trajectories[i].turns),), j) for j, i in enumerate(keep)])
        target = torch.tensor([float(trajectories[i].outcome) for i in keep])  # type: ignore[arg-type]
        loss = torch.tensor(float("nan"))
        for _ in range(epochs):
            sums = torch.zeros(len(keep)).index_add(0, owner, self.head(feats))
            loss = ((sums - target) ** 2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def contributions(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        """Per trajectory ``[n_i]`` the estimator's contributions ``c_k`` (no grounding term)."""
        with torch.no_grad():
            return [self.head(h).double().numpy() if len(h) else np.zeros(0) for h in self._hidden(trajectories)]

    def learn(self, trajectories: Sequence[Trajectory], step: int) -> dict[str, float]:
        return {"fit_mse": self.fit(trajectories, self.options.epochs)}

    def rewards(self, trajectories: Sequence[Trajectory]) -> list[np.ndarray]:
        out = []
        for t, c in zip(trajectories, self.contributions(trajectories)):
            valid = np.array([1.0 if turn.record.valid_action else 0.0 for turn in t.turns])
            out.append(np.full(len(t.turns), np.nan) if t.failed else c + self.options.grounding * valid)
        self._features = None
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])


def build(options: Mapping[str, Any], context: SourceContext) -> SPASource:
    opts = options_of(SPAOptions, options, "spa")
    if opts.micro_batch_tokens is None:
        opts = replace(opts, micro_batch_tokens=context.micro_batch_tokens)
    return SPASource(context.policy.model, context.policy.pad_token_id, opts, seed=context.seed, device=context.device)
