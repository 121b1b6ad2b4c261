"""Self-play: PFSP opponent pool, anchor ratings, and a self-play training run that logs both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turngym.training.config import TrainConfig
from turngym.training.evaluate import seat_score
from turngym.training.rollout import RolloutConfig, Task
from turngym.training.selfplay import (
    AnchorRater,
    OpponentPool,
    OpponentRecord,
    assign_opponents,
    pfsp_weights,
)
from turngym.training.trainer import train, update_pool
from turngym.training.trajectory import Trajectory


def test_pfsp_hard_weights_favour_opponents_we_lose_to():
    w = pfsp_weights([0.9, 0.5, 0.1], "hard", power=2.0)
    assert w.argmax() == 2 and w.argmin() == 0
    np.testing.assert_allclose(w, np.array([0.01, 0.25, 0.81]) / 1.07)
    even = pfsp_weights([0.9, 0.5, 0.1], "even")
    assert even.argmax() == 1 and even[0] == pytest.approx(even[2])
    np.testing.assert_allclose(pfsp_weights([0.2, 0.7], "uniform"), [0.5, 0.5])
    assert pfsp_weights([1.0, 0.0], "hard")[0] > 0  # the floor keeps beaten opponents reachable
    with pytest.raises(ValueError, match="'harder'"):
        pfsp_weights([0.5], "harder")


def test_pool_sampling_follows_results_and_snapshots_are_capped():
    pool = OpponentPool.from_specs(["random", "heuristic"], self_share=0.0, max_snapshots=2)
    for _ in range(20):
        pool.record("random", 1.0)  # we always beat random
        pool.record("heuristic", 0.0)  # and always lose to the heuristic
    rng = np.random.default_rng(0)
    draws = [pool.sample(rng) for _ in range(400)]
    assert draws.count("heuristic") > 0.95 * len(draws)

    assert pool.add_snapshot("hf:a", 5) is None
    assert pool.add_snapshot("hf:b", 10) is None
    evicted = pool.add_snapshot("hf:c", 15)
    assert evicted is not None and evicted.spec == "hf:a"
    assert [e.spec for e in pool.entries] == ["random", "heuristic", "hf:b", "hf:c"]  # fixed entries stay
    assert OpponentPool.from_dict(json.loads(json.dumps(pool.to_dict()))) == pool

    all_self = OpponentPool.from_specs(["random"], self_share=1.0)
    assert {all_self.sample(rng) for _ in range(50)} == {"self"}
    with pytest.raises(ValueError, match="self_share"):
        OpponentPool(entries=[], self_share=0.5)


def test_win_rate_is_smoothed_toward_even():
    record = OpponentRecord("random", games=2, score=2)
    assert record.win_rate() == pytest.approx(0.75)
    assert OpponentRecord("random").win_rate() == 0.5


def test_seat_score_compares_with_the_best_other_seat():
    assert seat_score({0: 1.0, 1: -1.0}, 0) == 1.0
    assert seat_score({0: 1.0, 1: -1.0}, 1) == 0.0
    assert seat_score({0: 0.0, 1: 0.0}, 1) == 0.5
    assert seat_score({0: 3.0, 1: 2.0}, 1) == 0.0  # both won chips: below the best other seat loses
    assert seat_score({0: -0.5}, 0) == 0.0 and seat_score({0: 0.5}, 0) == 1.0  # alone: against 0


def test_the_pool_counts_results_from_typed_outcomes_and_opponents():
    pool = OpponentPool.from_specs(["random", "heuristic"], self_share=0.5)
    played = [
        Trajectory("turngym/TicTacToe-v0", 0, "g", 0, 1, outcome=1.0, outcomes={0: -1.0, 1: 1.0}, opponent="random"),
        Trajectory("turngym/TicTacToe-v0", 1, "g", 0, 0, outcome=0.0, outcomes={0: 0.0, 1: 0.0}, opponent="random"),
        Trajectory("turngym/TicTacToe-v0", 2, "g", 0, 0, outcome=1.0, outcomes={0: 1.0, 1: -1.0}, opponent="self"),
        Trajectory("turngym/TicTacToe-v0", 3, "g", 0, 0, failed=True, opponent="heuristic"),
    ]
    update_pool(pool, played)
    random, heuristic = pool.entries
    assert (random.games, random.score) == (2, 1.5) and heuristic.games == 0


def test_assign_opponents_leaves_single_agent_tasks_alone():
    pool = OpponentPool.from_specs(["random"], self_share=0.0)
    tasks = assign_opponents([Task("turngym/TicTacToe-v0", 1), Task("turngym/Vowels-v0", 2)], pool,
                             np.random.default_rng(0), is_game=lambda env_id: "TicTacToe" in env_id)
    assert tasks[0].opponent == "random" and tasks[1].opponent is None


class _FirstLegalPolicy:
    """A deterministic 'model' for rating tests: always answers with the first free cell (real tokenizer)."""

    def __init__(self):
        from turngym.agents.tiny import char_tokenizer

        self.tokenizer = char_tokenizer()
        self.eos_token_ids = (self.tokenizer.eos_token_id,)

    def generate(self, prompts, params):
        from turngym.agents.base import Generation

        out = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            cell = text.rsplit("Choose one of:", 1)[1].split("[", 1)[1].split("]", 1)[0]
            ids = self.tokenizer.encode(f"[{cell}]", add_special_tokens=False) + [self.tokenizer.eos_token_id]
            out.append(Generation(f"[{cell}]", ids, np.zeros(len(ids), dtype=np.float32), "stop"))
        return out


def test_anchor_rater_places_a_policy_between_anchors_and_reports_per_seat_win_rates():
    rater = AnchorRater(["turngym/TicTacToe-v0"], ["random", "minimax"], games=8, anchor_games=20, n_boot=100)
    minimax_vs_random = [g for g in rater.anchor_results["turngym/TicTacToe-v0"]]
    assert len(minimax_vs_random) == 20
    (rating,) = rater.rate(_FirstLegalPolicy(), step=0, rollout=RolloutConfig(max_new_tokens=8, context="turn"))
    assert rating.anchors["minimax"] > rating.anchors["random"]
    assert rating.low <= rating.elo <= rating.high
    assert rating.elo < rating.anchors["minimax"]  # first-legal never beats perfect play
    stats = rating.per_anchor["minimax"]
    assert stats["games"] == 8 and stats["score"] <= 0.5
    assert set(rating.per_anchor) == {"random", "minimax"}
    assert 0.0 <= rating.per_anchor["random"]["win_seat0"] <= 1.0
    metrics = rating.to_metrics()
    assert "rating/TicTacToe-v0/elo" in metrics and "rating/TicTacToe-v0/vs_minimax/win_seat1" in metrics


def test_anchor_rater_rejects_an_anchor_that_does_not_play_the_game():
    with pytest.raises(ValueError, match="nash"):
        AnchorRater(["turngym/TicTacToe-v0"], ["nash"], games=2)


def test_config_requires_self_play_for_a_pool_and_games_for_ratings():
    with pytest.raises(ValueError, match="rollout.self_play"):
        TrainConfig.model_validate({"selfplay": {"opponents": ["random"]}})
    with pytest.raises(ValueError, match="Vowels"):
        TrainConfig.model_validate({"envs": [{"id": "turngym/Vowels-v0"}], "ratings": {"every": 2}})
    with pytest.raises(ValueError, match="pool is empty"):
        TrainConfig.model_validate({"rollout": {"self_play": True}, "selfplay": {"self_share": 0.5}})


@pytest.mark.slow
def test_self_play_run_with_pool_snapshots_and_anchor_ratings(tmp_path: Path):
    """A short self-play run on two games: PFSP pool with snapshots, ratings logged every step."""
    config = TrainConfig.model_validate({
        "name": "sp", "out_dir": str(tmp_path), "seed": 3, "steps": 3, "checkpoint_every": 1,
        "envs": [{"id": "turngym/TicTacToe-v0"}, {"id": "turngym/KuhnPoker-v0"}],
        "model": {"name": "tiny-random", "tiny_layers": 1, "tiny_hidden": 32},
        "rollout": {"tasks_per_step": 4, "group_size": 2, "max_new_tokens": 6, "max_episode_tokens": 256,
                    "self_play": True, "context": "turn"},
        "algo": {"estimator": "rae", "dynamic_sampling": False},
        "selfplay": {"opponents": ["random"], "self_share": 0.5, "snapshot_every": 1, "max_snapshots": 1},
        "ratings": {"every": 2, "anchors": ["random", "heuristic"], "games": 4, "anchor_games": 6},
        "eval": {"episodes": 0},
        "tensorboard": False,
    })
    summary = train(config, show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    # rated before training, at step 2 (every) and at the last step, on both games
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert sorted({r["step"] for r in state["ratings"]}) == [0, 2, 3]
    assert {r["env_id"] for r in state["ratings"]} == {"turngym/TicTacToe-v0", "turngym/KuhnPoker-v0"}
    assert "rating/KuhnPoker-v0/elo" in rows[1] and "rating/TicTacToe-v0/vs_heuristic/win_seat0" in rows[2]
    assert (tmp_path / "ratings.png").stat().st_size > 0
    assert summary["ratings"]["turngym/TicTacToe-v0"]["before"]["step"] == 0
    # one snapshot kept (the cap), the older ones evicted from the pool and the disk
    snapshots = [e for e in state["pool"]["entries"] if e["snapshot_step"] is not None]
    assert [e["snapshot_step"] for e in snapshots] == [3]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["step-3"]
    assert rows[-1]["selfplay/pool_size"] == 2.0


class _KingBetsPolicy(_FirstLegalPolicy):
    """A Kuhn rule through the token-level policy interface: bet or call with the king, else check or fold."""

    def generate(self, prompts, params):
        import re

        from turngym.agents.base import Generation

        out = []
        for prompt in prompts:
            text = self.tokenizer.decode(prompt)
            king = re.findall(r"Your card: (\w)", text)[-1] == "K"
            legal = re.findall(r"\[(\w+)\]", text.rsplit("Your move:", 1)[1])
            wanted = ("bet", "call") if king else ("check", "fold")
            move = f"[{next(m for m in legal if m in wanted)}]"
            ids = self.tokenizer.encode(move, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            out.append(Generation(move, ids, np.zeros(len(ids), dtype=np.float32), "stop"))
        return out


def test_chance_games_are_rated_on_duplicate_matches_with_both_seats_per_deal():
    rater = AnchorRater(["turngym/KuhnPoker-v0"], ["random", "nash"], games=8, anchor_games=40, n_boot=50)
    anchors = rater.anchor_results["turngym/KuhnPoker-v0"]
    assert len(anchors) == 20 and all(g.stop_reason == "duplicate" for g in anchors)  # 40 hands = 20 matches
    (rating,) = rater.rate(_KingBetsPolicy(), step=0,
                           rollout=RolloutConfig(max_new_tokens=8, context="turn"))
    assert rating.per_anchor["random"]["games"] == 4.0  # 8 hands = 4 deals played from both seats
    assert rating.low <= rating.elo <= rating.high


def test_a_task_seat_puts_the_policy_in_that_seat():
    from turngym.agents.text_policy import TextFunctionPolicy
    from turngym.agents.tiny import char_tokenizer
    from turngym.training.rollout import collect

    policy = TextFunctionPolicy(char_tokenizer(), lambda prompt: "[1]")
    batch = collect([Task("turngym/TicTacToe-v0", 4, opponent="random", seat=1), Task("turngym/TicTacToe-v0", 4, opponent="random", seat=0)],
                    policy, RolloutConfig(group_size=1, context="turn"))
    assert sorted(t.seat for t in batch.trajectories) == [0, 1]
