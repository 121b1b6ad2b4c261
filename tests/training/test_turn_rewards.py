"""Turn-reward sources: the protocol and config, OPRL's implicit PRM, SPA's progress attribution,
potential-based shaping, and the trainer's wiring with exact resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from turngym.agents.hf_policy import HFPolicy
from turngym.agents.tiny import tiny_char_model
from turngym.envs.types import TurnRecord
from turngym.training.advantages import AdvantageConfig, grpo
from turngym.training.batching import collate, make_rows, policy_token_logprobs
from turngym.training.config import TrainConfig, load_preset
from turngym.training.rewards import assemble
from turngym.training.trajectory import Trajectory, Turn
from turngym.training.turn_rewards import build_turn_rewards
from turngym.training.turn_rewards.base import ActiveSource, TurnRewards
from turngym.training.turn_rewards.oprl import OPRLOptions, OPRLSource, dpo_loss, preference_pairs
from turngym.training.turn_rewards.rlvmr import RLVMRSource
from turngym.training.turn_rewards.spa import SPAOptions, SPASource
from turngym.training.turn_rewards.tokens import backward_turn_logprob_sums, turn_logprob_sums


@pytest.fixture(scope="module")
def policy():
    return HFPolicy(*tiny_char_model(0))


def _traj(policy, group: str, index: int, replies: list[str], outcome: float | None, valid=None, anchors=None) -> Trajectory:
    enc = lambda s: list(policy.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    turns = []
    for k, reply in enumerate(replies):
        ids = enc(reply)
        record = TurnRecord(turn=k, seat=0, reward=0.0, valid_action=True if valid is None else valid[k])
        turns.append(Turn(enc(f"obs {k}:"), ids, [0.0] * len(ids), reply, "stop", record,
                          anchor=None if anchors is None else anchors[k]))
    return Trajectory("turngym/Vowels-v0", 0, group, index, 0, turns=turns, outcome=outcome, failed=outcome is None)


def _vowel_set(policy, groups=4, size=4, seed=0):
    """Groups of two-turn rollouts whose outcome is their vowel share (the preference the PRM must learn)."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(groups):
        for i in range(size):
            replies = ["".join(rng.choice(list("aeioubcdfgz"), 5)) for _ in range(2)]
            share = float(np.mean([sum(c in "aeiou" for c in r) / len(r) for r in replies]))
            out.append(_traj(policy, f"g{g}", i, replies, share))
    return out


def test_config_selects_sources_and_quotes_bad_names_and_options(policy):
    with pytest.raises(ValueError, match=r"unknown turn-reward source 'oprll'.*did you mean 'oprl'"):
        TrainConfig.model_validate({"algo": {"turn_rewards": [{"source": "oprll"}]}})
    config = TrainConfig.model_validate({"algo": {"turn_rewards": [{"source": "rlvmr", "weight": 0.5}], "info_gain": True}})
    runner = build_turn_rewards(config, policy)
    assert [(a.component, a.weight, a.source.local) for a in runner.sources] == [("info_gain", 1.0, True), ("rlvmr", 0.5, False)]
    bad = TrainConfig.model_validate({"algo": {"turn_rewards": [{"source": "oprl", "options": {"betta": 1}}]}})
    with pytest.raises(ValueError, match=r"no option\(s\) \['betta'\].*'beta'"):
        build_turn_rewards(bad, policy)
    tiny_budget = TrainConfig.model_validate({"algo": {"turn_rewards": [{"source": "oprl", "options": {"micro_batch_tokens": 0}}]}})
    with pytest.raises(ValueError, match=r"micro_batch_tokens >= 1.*micro_batch_tokens=0"):
        build_turn_rewards(tiny_budget, policy)


def test_runner_writes_named_components_that_gra_gates_and_skips_absent_values(policy):
    wins = _traj(policy, "g", 0, ["<plan>p</plan> go", "<monitor>m</monitor> go"], 1.0)
    loses = _traj(policy, "g", 1, ["<plan>p</plan> go", "go"], 0.0)
    failed = _traj(policy, "g", 2, ["<plan>p</plan> go"], None)
    batch = [wins, loses, failed]
    runner = TurnRewards([ActiveSource(RLVMRSource(), 2.0, "rlvmr")])
    runner.apply(batch, 0, local=False)
    assert wins.turns[0].record.components == {"rlvmr": 2.0 * 0.5}  # plan of a won episode, weight 2
    assert wins.turns[1].record.components == {"rlvmr": 0.0}  # monitor earns 0: a finite 0 is written (absent is nan)
    assert loses.turns[1].record.components == {"rlvmr": 2.0 * -0.1}
    assert "rlvmr" not in failed.turns[0].record.components  # failed rollouts are never scored
    assert wins.turns[0].record.reward == pytest.approx(1.0)
    rewards = assemble(batch, delta=0.5)  # G-RA: the losing rollout's gate is closed
    assert rewards.turn_rewards[0][0] == pytest.approx(1.0) and rewards.turn_rewards[1][1] == 0.0
    metrics = runner.metrics()
    assert metrics["turn_rewards/rlvmr/coverage"] == pytest.approx(4 / 5)


def test_oprl_step_rewards_sum_to_a_score_that_orders_the_trained_pairs(policy):
    batch = _vowel_set(policy)
    prm = tiny_char_model(0)[0]
    source = OPRLSource(prm, policy.pad_token_id, OPRLOptions(beta=0.5, lr=3e-3, updates=1, max_pairs=200))
    pairs = preference_pairs(batch)
    assert pairs and all(batch[a].group_key == batch[b].group_key and batch[a].outcome > batch[b].outcome for a, b in pairs)
    before = source.trajectory_scores(batch)
    assert np.allclose(before, 0.0)  # PRM = reference at the start: no reward yet
    for step in range(25):
        metrics = source.learn(batch, step)
    assert metrics["dpo_loss"] < np.log(2)  # below the loss of an untrained PRM
    steps = source.rewards(batch)
    scores = source.trajectory_scores(batch)
    assert np.allclose([s.sum() for s in steps], scores)  # the step rewards sum to the trajectory score
    ordered = np.mean([scores[a] > scores[b] for a, b in pairs])
    assert ordered >= 0.9, f"the trained PRM orders only {ordered:.0%} of its preference pairs"


def test_oprl_resumes_exactly_from_its_state(policy, tmp_path):
    batch = _vowel_set(policy, groups=2)
    opts = OPRLOptions(beta=0.5, lr=3e-3, max_pairs=8)
    straight = OPRLSource(tiny_char_model(0)[0], policy.pad_token_id, opts, seed=3)
    for step in range(3):
        straight.learn(batch, step)
    first = OPRLSource(tiny_char_model(0)[0], policy.pad_token_id, opts, seed=3)
    for step in range(2):
        first.learn(batch, step)
    torch.save(first.state_dict(), tmp_path / "oprl.pt")
    resumed = OPRLSource(tiny_char_model(1)[0], policy.pad_token_id, opts, seed=3)  # other weights: all come from the file
    resumed.load_state_dict(torch.load(tmp_path / "oprl.pt", weights_only=False))
    resumed.learn(batch, 2)
    for a, b in zip(straight.rewards(batch), resumed.rewards(batch)):
        assert np.array_equal(a, b)


def test_oprl_two_pass_gradient_equals_the_one_graph_gradient_at_any_micro_batch_size(policy):
    # the DPO update never holds the batch's graph: scores first, then ∂L/∂s_i · ∂s_i/∂φ one micro-batch
    # at a time. Its gradient must be the textbook one-graph gradient, however the rows are packed.
    batch = _vowel_set(policy, groups=2)
    pairs = preference_pairs(batch)
    win, lose = torch.tensor([a for a, _ in pairs]), torch.tensor([b for _, b in pairs])
    beta = 0.5

    def textbook(prm):
        scores = torch.stack([torch.stack([policy_token_logprobs(prm, collate([row], policy.pad_token_id)).sum()
                                           for row in make_rows(t, np.zeros(len(t.turns)), None)]).sum() for t in batch])
        prm.zero_grad(set_to_none=True)
        dpo_loss(scores[win], scores[lose], beta).backward()
        return [p.grad.clone() for p in prm.parameters()]

    model = tiny_char_model(0)[0]
    with torch.no_grad():  # move it off the reference so the scores differ
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected = textbook(model)
    for token_budget in (None, 1, 40):
        scores = torch.stack([s.sum() for s in turn_logprob_sums(model, batch, policy.pad_token_id, 3, "cpu", token_budget)])
        scores.requires_grad_(True)
        dpo_loss(scores[win], scores[lose], beta).backward()
        model.zero_grad(set_to_none=True)
        upstream = [torch.full((len(t.turns),), float(g)) for t, g in zip(batch, scores.grad)]
        backward_turn_logprob_sums(model, batch, upstream, policy.pad_token_id, 3, "cpu", token_budget)
        for got, want in zip((p.grad for p in model.parameters()), expected):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), token_budget


def test_an_untrained_prm_scores_nothing_even_with_a_bf16_learner_and_unpaired_groups(policy):
    # PRM = reference at the start: every score is exactly 0, so no pair is "ordered" and the DPO loss
    # is log 2 — also when the learner runs bf16 autocast and some groups form no pair (the scored
    # subset differs from the whole batch, so packing differs unless both are scored alike).
    from turngym.training.precision import set_learner_precision

    prm = tiny_char_model(0)[0]
    set_learner_precision(prm, "bf16-autocast")
    ties = [_traj(policy, "tie", i, ["ab" * (i + 1), "cd"], 0.5) for i in range(3)]  # one outcome: no pairs
    batch = [*ties, *_vowel_set(policy, groups=2)]
    source = OPRLSource(prm, policy.pad_token_id, OPRLOptions(beta=0.5, micro_batch_tokens=64))
    metrics = source.learn(batch, 0)
    assert metrics["pair_accuracy"] == 0.0 and metrics["dpo_loss"] == pytest.approx(np.log(2), abs=1e-7)
    # it scores in fp32 whatever the learner runs (bf16 round-off would swamp a reward's small difference)
    fp32 = turn_logprob_sums(source.reference, batch, policy.pad_token_id, token_budget=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = turn_logprob_sums(source.reference, batch, policy.pad_token_id, token_budget=64)
    assert not all(torch.equal(a, b) for a, b in zip(bf16, fp32))  # the check can tell them apart
    scored = [r / 0.5 for r in source.rewards(batch)]
    moved = turn_logprob_sums(source.prm, batch, policy.pad_token_id, token_budget=64)
    assert all(np.allclose(s, (m - f).numpy(), atol=1e-6) for s, m, f in zip(scored, moved, fp32))


def test_oprl_starts_from_the_policy_weights_rl_starts_from_not_those_it_was_built_with(policy):
    import copy

    learner = HFPolicy(copy.deepcopy(policy.model), policy.tokenizer)
    config = TrainConfig.model_validate({"algo": {"turn_rewards": [{"source": "oprl"}]},
                                         "optim": {"micro_batch_tokens": 64, "gradient_checkpointing": True}})
    (active,) = build_turn_rewards(config, learner).sources
    assert active.source.options.micro_batch_tokens == 64 and active.source.options.gradient_checkpointing
    with torch.no_grad():  # the warm-up trains the policy after the sources are built
        for p in learner.model.parameters():
            p.add_(0.5)
    active.source.learn(_vowel_set(policy), 0)
    start = dict(learner.model.named_parameters())
    assert all(torch.equal(p, start[n]) for n, p in active.source.reference.named_parameters())
    assert active.source.prm is not learner.model  # a copy: training the PRM leaves the policy alone


def test_a_checkpoint_from_before_the_first_step_restores_no_source_state(policy, tmp_path):
    runner = TurnRewards([ActiveSource(SPASource(policy.model, policy.pad_token_id), 1.0, "spa")])
    (tmp_path / "checkpoint").mkdir()
    runner.load(tmp_path, step=0)  # a warm-up's checkpoint: the sources have learned nothing yet
    with pytest.raises(FileNotFoundError, match="holds no state for turn-reward source 'spa'"):
        runner.load(tmp_path, step=3)


def _chain_mdp_trajectories(policy, potential):
    """Every 3-move path of a 5-state chain from state 2 (moves L/R, clamped); outcome 1 on reaching state 4.
    Dense reward of move k: the shaping Φ(s_{k+1}) − Φ(s_k) with Φ(terminal) = 0 (episodic potential shaping)."""
    out = []
    for i, moves in enumerate(itertools.product("LR", repeat=3)):
        states = [2]
        for m in moves:
            states.append(min(4, max(0, states[-1] + (1 if m == "R" else -1))))
        phi = [potential[s] for s in states[:-1]] + [0.0]
        t = _traj(policy, "chain", i, list(moves), float(states[-1] == 4))
        for k, turn in enumerate(t.turns):
            turn.record.components["shaping"] = phi[k + 1] - phi[k]
        out.append(t)
    return out


def test_potential_based_shaping_leaves_the_advantages_and_the_optimal_policy_unchanged(policy):
    rng = np.random.default_rng(0)
    potential = rng.normal(size=5) * 3
    plain = _chain_mdp_trajectories(policy, np.zeros(5))
    shaped = _chain_mdp_trajectories(policy, potential)
    cfg = AdvantageConfig(warn_singleton_groups=False)
    a = grpo(assemble(plain, None, "ungated"), cfg, None).per_turn
    b = grpo(assemble(shaped, None, "ungated"), cfg, None).per_turn
    assert all(np.allclose(x, y) for x, y in zip(a, b))  # every return moved by the same −Φ(s₀)
    # the optimal actions of the finite-horizon chain, by backward induction, with and without shaping
    def optimal_actions(phi):
        value = {s: float(s == 4) for s in range(5)}
        best = []
        for moves_left in range(1, 4):
            q = {s: {m: (phi[n] if moves_left > 1 else 0.0) - phi[s] + value[n]
                     for m, n in (("L", max(0, s - 1)), ("R", min(4, s + 1)))} for s in range(5)}
            best.append({s: {m for m in q[s] if np.isclose(q[s][m], max(q[s].values()))} for s in range(5)})
            value = {s: max(q[s].values()) for s in range(5)}
        return best
    assert optimal_actions(np.zeros(5)) == optimal_actions(potential)
    # a per-action bonus that is not a potential difference does change the advantages
    offset = [_traj(policy, "chain", i, [turn.text for turn in t.turns], t.outcome) for i, t in enumerate(plain)]
    for t, p in zip(offset, plain):
        for turn, ptn in zip(t.turns, p.turns):
            turn.record.components["bonus"] = 0.4 if ptn.text == "L" else 0.0
    c = grpo(assemble(offset, None, "ungated"), cfg, None).per_turn
    assert not all(np.allclose(x, y) for x, y in zip(a, c))


def test_spa_contributions_sum_to_the_outcome_after_fitting(policy):
    batch = _vowel_set(policy, groups=3)
    batch[1].turns[0].record.valid_action = False
    source = SPASource(policy.model, policy.pad_token_id, SPAOptions(hidden=32, lr=1e-2, epochs=0, grounding=0.1))
    loss = source.fit(batch, 400)
    sums = np.array([c.sum() for c in source.contributions(batch)])
    outcomes = np.array([t.outcome for t in batch])
    assert loss < 1e-3 and np.abs(sums - outcomes).max() < 0.05
    rewards = source.rewards(batch)
    contributions = source.contributions(batch)
    assert rewards[1][0] == pytest.approx(contributions[1][0])  # invalid action: no grounding bonus
    assert rewards[1][1] == pytest.approx(contributions[1][1] + 0.1)
    state = source.state_dict()
    other = SPASource(policy.model, policy.pad_token_id, SPAOptions(hidden=32), seed=5)
    other.load_state_dict(state)
    assert all(np.array_equal(x, y) for x, y in zip(other.contributions(batch), contributions))


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line]


@pytest.mark.parametrize("source", ["oprl", pytest.param("spa", marks=pytest.mark.slow)])
def test_trainer_runs_a_learned_source_and_resumes_exactly(tmp_path, source):
    from turngym.training.trainer import train

    common = ["rollout.tasks_per_step=2", "rollout.group_size=4", "checkpoint_every=1",
              f"algo.turn_rewards=[{{source: {source}, weight: 0.5, options: {{lr: 0.003}}}}]"]
    straight = load_preset("ci-tiny", [f"out_dir={tmp_path / 'a'}", "steps=3", *common])
    train(straight, show_progress=False)
    part = load_preset("ci-tiny", [f"out_dir={tmp_path / 'b'}", "steps=2", *common])
    train(part, show_progress=False)
    assert (tmp_path / "b" / "checkpoint" / "turn_rewards.pt").exists()
    resumed = load_preset("ci-tiny", [f"out_dir={tmp_path / 'b'}", "steps=3", *common])
    train(resumed, resume=True, show_progress=False)
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3]
    assert f"turn_rewards/{source}/mean" in a[-1]
    for x, y in zip(a, b):
        for key in ("reward/mean_outcome", "loss", f"turn_rewards/{source}/mean"):
            assert x[key] == pytest.approx(y[key], rel=1e-6, abs=1e-9), (x["step"], key)


def test_igpo_as_a_source_gives_the_advantages_of_the_hard_wired_path(policy):
    import copy

    from turngym.training.advantages import compute
    from turngym.training.info_gain import information_gain_rewards

    batch = _vowel_set(policy, groups=2)
    for t in batch:
        t.info["answer"] = "aei"
        t.turns[0].record.components["progress"] = 0.1
    config = TrainConfig.model_validate({"algo": {"estimator": "turn_group", "info_gain": True, "info_gain_weight": 0.7,
                                                  "gate": "ungated"}})
    old = compute(batch, config.algo, None, information_gains=information_gain_rewards(policy, batch))[0]
    sourced = copy.deepcopy(batch)
    build_turn_rewards(config, policy).apply(sourced, 0, local=True)
    assert all("info_gain" in t.turns[0].record.components for t in sourced)
    new = compute(sourced, config.algo, None)[0]
    assert all(np.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(old.per_turn, new.per_turn))
