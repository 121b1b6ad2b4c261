"""The rollout engine: token-in/token-out, loss masks, groups, self-play seats, failure accounting."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from turngym.agents.models import load_smollm2_tokenizer
from turngym.agents.text_policy import TextFunctionPolicy
from turngym.envs.core import TurnEnv, action_text
from turngym.envs.registration import register
from turngym.envs.types import StopReason, TurnRecord
from turngym.training.chat_tokens import ChatTokens, TemplateNotPrefixStable
from turngym.training.rollout import RolloutConfig, Task, collect
from turngym.training.trajectory import read_jsonl, write_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    return load_smollm2_tokenizer()


def lowest_free_cell(prompt: str) -> str:
    free = re.findall(r"Choose one of: ((?:\[\d\] ?)+)", prompt)
    return free[-1].split()[0] if free else "[1]"


def test_token_in_token_out_keeps_generated_ids_and_masks_env_tokens(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    batch = collect([Task("turngym/TicTacToe-v0", 3)], policy, RolloutConfig(group_size=2, opponent="random"))
    assert len(batch.trajectories) == 2
    for traj in batch.trajectories:
        flat = traj.flat()
        assert len(flat.token_ids) == len(flat.loss_mask) == len(flat.turn_ids) == len(flat.old_logprobs)
        generated = [tok for tok, m in zip(flat.token_ids, flat.loss_mask) if m]
        assert generated == [tok for t in traj.turns for tok in t.completion_ids]
        # every generated turn ends with EOS and the next prompt starts after it: the decoded sequence
        # equals the chat template applied to the same conversation
        messages = [{"role": "system", "content": tokenizer.decode(traj.turns[0].prompt_ids).split("<|im_start|>system\n")[1].split("<|im_end|>")[0]}]
        assert tokenizer.decode(flat.token_ids).startswith("<|im_start|>system\n")
        assert [turn_id for turn_id, m in zip(flat.turn_ids, flat.loss_mask) if m] == sorted(
            k for k, t in enumerate(traj.turns) for _ in t.completion_ids
        )
        assert all(tid == -1 for tid, m in zip(flat.turn_ids, flat.loss_mask) if not m)
        assert traj.outcome is not None and traj.stop_reason == "game_over"
        assert messages


def test_the_sequence_matches_the_chat_template_of_the_conversation(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    traj = collect([Task("turngym/TicTacToe-v0", 0)], policy, RolloutConfig(group_size=1)).trajectories[0]
    text = tokenizer.decode(traj.flat().token_ids)
    # rebuild the conversation from the parts and render it with the template
    assert text.count("<|im_start|>assistant\n") == len(traj.turns)
    assert text.count("<|im_start|>user\n") == len(traj.turns)
    for turn in traj.turns:
        assert turn.completion_ids[-1] == tokenizer.eos_token_id


def test_identical_seeds_give_identical_group_starts(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    batch = collect([Task("turngym/KuhnPoker-v0", 11)], policy, RolloutConfig(group_size=4))
    firsts = {tuple(t.turns[0].prompt_ids) for t in batch.trajectories}
    assert len(firsts) == 1
    assert {t.group_id for t in batch.trajectories} == {"turngym/KuhnPoker-v0#11"}
    assert sorted(t.sample_index for t in batch.trajectories) == [0, 1, 2, 3]


def test_generation_is_batched_across_envs_each_round(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    collect([Task("turngym/TicTacToe-v0", s) for s in range(4)], policy, RolloutConfig(group_size=4))
    assert policy.calls[0] == 16  # all 16 episodes asked in one call on the first round
    assert max(policy.calls) == 16 and len(policy.calls) <= 5


def test_self_play_yields_one_trajectory_per_seat_with_zero_sum_outcomes(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    batch = collect([Task("turngym/TicTacToe-v0", 5)], policy, RolloutConfig(group_size=2, self_play=True))
    assert sorted((t.sample_index, t.seat) for t in batch.trajectories) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for k in (0, 1):
        seats = [t for t in batch.trajectories if t.sample_index == k]
        assert sum(t.outcome for t in seats) == 0.0
    # lowest-free-cell vs itself: X completes the left column (1, 4, 7) and wins
    assert {t.seat: t.outcome for t in batch.trajectories if t.sample_index == 0} == {0: 1.0, 1: -1.0}


def test_trajectories_round_trip_through_jsonl(tokenizer, tmp_path):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    batch = collect([Task("turngym/LiarsDice-v0", 2)], policy, RolloutConfig(group_size=2))
    path = tmp_path / "t.jsonl"
    write_jsonl(batch.trajectories, path)
    again = read_jsonl(path)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in batch.trajectories]


def test_invalid_replies_are_counted(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "I think I will pass on this.")
    batch = collect([Task("turngym/TicTacToe-v0", 1)], policy, RolloutConfig(group_size=3))
    assert batch.metrics.invalid_actions == 3 and batch.metrics.to_dict()["invalid_action_rate"] == 1.0
    assert all(t.stop_reason == "invalid_action" and t.outcome == -1.5 for t in batch.trajectories)


def test_token_budget_stops_with_the_outcome_computed(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    config = RolloutConfig(group_size=1, max_episode_tokens=260, max_new_tokens=8, self_play=True)
    traj = collect([Task("turngym/TicTacToe-v0", 0)], policy, config).trajectories
    assert all(t.stop_reason == "token_limit" and t.outcome == 0.0 for t in traj)
    assert all(len(t.flat().token_ids) <= 260 for t in traj)


class FlakyEnv(TurnEnv):
    """Raises on its second step when the seed is odd — an environment failure, not a task failure."""

    action_format = "Reply with anything."

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seed_, self.t = seed, 0
        return "say something", {"seat": 0}

    def step(self, action):
        action_text(action)  # parses like a real env; the text itself does not matter
        self.t += 1
        if self.t == 2 and self.seed_ % 2 == 1:
            raise ConnectionError("backend went away")
        record = TurnRecord(turn=self.t - 1, seat=0, reward=0.0)
        if self.t == 3:
            record.outcome = record.reward = 1.0
            record.terminated, record.stop_reason = True, StopReason.SOLVED
        return "ok", record.reward, record.terminated, False, {"turn": record, "seat": 0}

    def stop(self, reason):
        return {0: 0.0}


register("test/Flaky-v0", FlakyEnv, family="toy", reward_bounds=(0.0, 1.0))


def test_an_env_that_raises_is_masked_and_counted_not_dropped(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    batch = collect([Task("test/Flaky-v0", 1), Task("test/Flaky-v0", 2)], policy, RolloutConfig(group_size=3))
    assert len(batch.trajectories) == 6  # groups never shrink
    failed = [t for t in batch.trajectories if t.failed]
    assert len(failed) == 3 and all(t.seed == 1 and t.outcome is None for t in failed)
    assert all("ConnectionError: backend went away" in t.error for t in failed)
    assert batch.metrics.failed == 3 and batch.metrics.to_dict()["failure_rate"] == 0.5


def test_resampling_replays_failed_rollouts_then_masks(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    config = RolloutConfig(group_size=2, on_env_error="resample", max_resamples=2)
    batch = collect([Task("test/Flaky-v0", 1)], policy, config)
    assert len(batch.trajectories) == 2 and all(t.failed for t in batch.trajectories)
    assert batch.metrics.resampled == 4


def test_a_template_that_rewrites_history_is_refused(tokenizer):
    class Stripping:
        eos_token_id = tokenizer.eos_token_id

        def decode(self, ids):
            return tokenizer.decode(ids)

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
            parts = []
            for i, m in enumerate(messages):
                content = m["content"]
                if m["role"] == "assistant" and i != last_assistant:
                    content = re.sub(r"<think>.*?</think>", "", content)
                parts.append(f"<{m['role']}>{content}</{m['role']}>")
            return "".join(parts) + ("<assistant>" if add_generation_prompt else "")

    with pytest.raises(TemplateNotPrefixStable, match="not append-only"):
        ChatTokens(Stripping())


def test_config_is_validated():
    with pytest.raises(ValueError, match="group_size must be >= 1, got 0"):
        RolloutConfig(group_size=0)
    with pytest.raises(ValueError, match="on_env_error must be 'mask' or 'resample', got 'retry'"):
        RolloutConfig(on_env_error="retry")
    assert np.isfinite(RolloutConfig().max_new_tokens)


def random_free_cell(seed: int):
    import random

    rng = random.Random(seed)

    def reply(prompt: str) -> str:
        free = re.findall(r"Choose one of: ((?:\[\d\] ?)+)", prompt)
        return rng.choice(free[-1].split()) if free else "[1]"

    return reply


def test_branching_forks_one_trunk_into_the_group(tokenizer):
    policy = TextFunctionPolicy(tokenizer, random_free_cell(0))
    config = RolloutConfig(group_size=4, opponent="random", branch_turn=2, context="turn")
    batch = collect([Task("turngym/TicTacToe-v0", 4)], policy, config)
    assert policy.calls[:2] == [1, 1]  # the trunk plays its two turns alone, then the 4 branches together
    assert policy.calls[2] == 4 and batch.metrics.branched == 4
    trajectories = batch.trajectories
    assert sorted(t.sample_index for t in trajectories) == [0, 1, 2, 3]
    trunk = [(t.prompt_ids, t.completion_ids) for t in trajectories[0].turns[:2]]
    assert all([(t.prompt_ids, t.completion_ids) for t in traj.turns[:2]] == trunk for traj in trajectories)
    assert len({tuple(tuple(t.completion_ids) for t in traj.turns) for traj in trajectories}) > 1  # branches diverge
    assert all(t.outcome is not None and not t.failed for t in trajectories)


def test_branching_continues_exactly_like_the_unforked_episode(tokenizer):
    """A deterministic policy: every branch replays the trunk's own continuation (forked opponent dice included)."""
    plain = collect([Task("turngym/LiarsDice-v0", 9)], TextFunctionPolicy(tokenizer, lowest_free_cell),
                    RolloutConfig(group_size=1, opponent="random", context="turn")).trajectories[0]
    branched = collect([Task("turngym/LiarsDice-v0", 9)], TextFunctionPolicy(tokenizer, lowest_free_cell),
                       RolloutConfig(group_size=3, opponent="random", context="turn", branch_turn=1)).trajectories
    for t in branched:
        assert [turn.completion_ids for turn in t.turns] == [turn.completion_ids for turn in plain.turns]
        assert [turn.prompt_ids for turn in t.turns] == [turn.prompt_ids for turn in plain.turns]
        assert t.outcome == plain.outcome


def test_branching_an_env_that_cannot_fork_is_a_clear_error(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    with pytest.raises(ValueError, match="test/Flaky-v0.*cannot"):
        collect([Task("test/Flaky-v0", 2)], policy, RolloutConfig(group_size=2, branch_turn=1))
    with pytest.raises(ValueError, match="branch_turn"):
        RolloutConfig(branch_turn=0)


def test_progress_is_reported_every_round_up_to_the_total(tokenizer):
    seen = []
    collect([Task("turngym/TicTacToe-v0", s) for s in range(3)], TextFunctionPolicy(tokenizer, lowest_free_cell),
            RolloutConfig(group_size=2), on_progress=lambda done, total: seen.append((done, total)))
    assert seen and all(total == 6 for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == 6


def test_games_report_anchor_states_outcomes_and_the_opponent(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lowest_free_cell)
    batch = collect([Task("turngym/TicTacToe-v0", 3)], policy, RolloutConfig(group_size=2, opponent="random"))
    for t in batch.trajectories:
        anchors = [turn.anchor for turn in t.turns]
        assert all(isinstance(a, str) and a for a in anchors) and len(set(anchors)) == len(anchors)
        assert set(t.outcomes) == {0, 1} and t.outcomes[t.seat] == t.outcome and sum(t.outcomes.values()) == 0
        assert t.opponent == "random"
    assert len({t.turns[0].anchor for t in batch.trajectories}) == 1  # one task: the same first state
    selfplay = collect([Task("turngym/TicTacToe-v0", 5)], policy, RolloutConfig(group_size=1, self_play=True))
    assert {t.opponent for t in selfplay.trajectories} == {"self"}
    first_moves = {t.seat: t.turns[0].anchor for t in selfplay.trajectories}
    assert first_moves[0] != first_moves[1]  # seat 1 first acts on a board with X's first move


def test_a_single_agent_task_has_no_anchor_states_and_no_opponent(tokenizer):
    policy = TextFunctionPolicy(tokenizer, lambda prompt: "hi")
    (t,) = collect([Task("test/Flaky-v0", 2)], policy, RolloutConfig(group_size=1)).trajectories
    assert [turn.anchor for turn in t.turns] == [None] * 3
    assert t.opponent is None and t.outcomes == {0: 1.0} and t.group_key == "test/Flaky-v0#2/seat0"


def test_a_bug_in_the_rollouts_own_bookkeeping_raises_instead_of_being_masked(tokenizer):
    class NoLogprobs(TextFunctionPolicy):
        def generate(self, prompts, params):
            return [dataclasses.replace(g, logprobs=None) for g in super().generate(prompts, params)]

    with pytest.raises(TypeError, match="NoneType"):
        collect([Task("turngym/TicTacToe-v0", 0)], NoLogprobs(tokenizer, lowest_free_cell), RolloutConfig(group_size=1))


def test_the_rollout_config_derives_from_the_training_section():
    from turngym.training.config import RolloutSection

    section = RolloutSection(group_size=3, max_new_tokens=12, context="turn", opponent="heuristic")
    config = RolloutConfig.from_section(section, seed=7, env_kwargs={"e": {"k": 1}}, temperature=0.0)
    assert (config.group_size, config.max_new_tokens, config.context, config.opponent) == (3, 12, "turn", "heuristic")
    assert (config.seed, config.env_kwargs, config.temperature) == (7, {"e": {"k": 1}}, 0.0)
    with pytest.raises(ValueError, match=r"max_new_tokens \(12\) must be >= 1 and <= max_episode_tokens \(10\)"):
        RolloutConfig.from_section(section, seed=0, max_episode_tokens=10)
