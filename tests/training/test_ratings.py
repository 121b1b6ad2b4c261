"""Ratings: Bradley–Terry against hand-computed fits, bootstrap intervals, OpenSkill, payoff matrix, records."""

from __future__ import annotations

import json
import math

import pytest

from turngym.training.ratings import (
    ELO_SCALE,
    GameResult,
    bootstrap_intervals,
    bradley_terry,
    duplicate_matches,
    openskill_ratings,
    payoff_matrix,
    prior_strength,
)

ENV = "turngym/TicTacToe-v0"


def game(a: str, b: str, score_a: float, seed: int = 0, seat_a: int = 0, **kw) -> GameResult:
    return GameResult(a, b, score_a, ENV, seed, seat_a, **kw)


def games(a: str, b: str, wins: int = 0, draws: int = 0, losses: int = 0) -> list[GameResult]:
    """``a``'s wins, draws and losses against ``b``."""
    return [game(a, b, 1.0)] * wins + [game(a, b, 0.5)] * draws + [game(a, b, 0.0)] * losses


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def bisect(f, lo: float, hi: float) -> float:
    """Root of a decreasing function on [lo, hi], to machine precision."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------- Bradley–Terry
def test_elo_scale_constant():
    assert ELO_SCALE == pytest.approx(400 / math.log(10))
    # the default prior: N(1500, 1000²) Elo points = an L2 coefficient (ELO_SCALE / 1000)² on logits
    assert prior_strength(1000.0) == pytest.approx((400 / math.log(10) / 1000) ** 2)
    assert prior_strength(None) == 0.0
    with pytest.raises(ValueError):
        prior_strength(0.0)


def test_two_players_three_of_four_without_prior_is_log3():
    # Maximum likelihood: P(A beats B) = 3/4 = σ(d) ⇒ d = ln 3 ⇒ 400·log10(3) ≈ 190.85 Elo apart.
    r = bradley_terry(games("A", "B", wins=3, losses=1), prior_sd=None)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3), abs=1e-8)
    assert r["A"] - r["B"] == pytest.approx(190.848501887865, abs=1e-8)
    assert (r["A"] + r["B"]) / 2 == pytest.approx(1500.0, abs=1e-9)
    assert list(r) == ["A", "B"]  # highest first


def test_two_players_three_of_four_with_the_default_prior():
    # Log-posterior 3·log σ(d) + log σ(−d) − λ/2·(r_A² + r_B²), with r_A = −r_B = d/2 by symmetry:
    # stationary where 3 − 4σ(d) − λ·d/2 = 0, λ = (400 / ln 10 / 1000)².
    lam = (400 / math.log(10) / 1000.0) ** 2
    d = bisect(lambda x: 3 - 4 * sigmoid(x) - lam * x / 2, 0.0, 5.0)
    r = bradley_terry(games("A", "B", wins=3, losses=1))
    assert r["A"] - r["B"] == pytest.approx(400 / math.log(10) * d, abs=1e-6)
    assert r["A"] == pytest.approx(1500 + 400 / math.log(10) * d / 2, abs=1e-6)
    # "tiny": it shrinks the 4-game estimate by under 4 Elo, and a 400-game one by under 0.1
    assert 186.0 < r["A"] - r["B"] < 190.848
    big = bradley_terry(games("A", "B", wins=300, losses=100))
    assert big["A"] - big["B"] == pytest.approx(400 * math.log10(3), abs=0.1)


def test_three_players_transitive_closed_form():
    # Data exactly consistent with logits (ln 2, 0, −ln 2): P(A>B) = 2/3, P(B>C) = 2/3, P(A>C) = 4/5.
    # The score equations W_i = Σ_j N_ij σ(r_i − r_j) then hold exactly, so the MLE is those logits.
    data = games("A", "B", wins=2, losses=1) + games("B", "C", wins=2, losses=1) + games("A", "C", wins=4, losses=1)
    r = bradley_terry(data, prior_sd=None)
    step = 400 * math.log10(2)  # 120.41 Elo per factor 2 in odds
    assert r["A"] == pytest.approx(1500 + step, abs=1e-8)
    assert r["B"] == pytest.approx(1500, abs=1e-8)
    assert r["C"] == pytest.approx(1500 - step, abs=1e-8)


def test_three_players_cyclic_are_equal():
    # A beats B, B beats C, C beats A, each 2-1: by symmetry everyone is at the mean.
    data = games("A", "B", wins=2, losses=1) + games("B", "C", wins=2, losses=1) + games("C", "A", wins=2, losses=1)
    for prior_sd in (None, 1000.0):
        r = bradley_terry(data, prior_sd=prior_sd)
        assert all(v == pytest.approx(1500.0, abs=1e-8) for v in r.values())


def test_with_prior_the_gradient_vanishes_and_the_mean_is_1500():
    data = (
        games("A", "B", wins=5, draws=2, losses=1)
        + games("B", "C", wins=3, losses=3)
        + games("A", "C", wins=7, draws=1)
        + games("C", "D", wins=1, losses=6)
        + games("A", "D", draws=4)
    )
    r = bradley_terry(data, prior_sd=500.0)
    lam = (400 / math.log(10) / 500.0) ** 2
    logit = {p: (v - 1500) / (400 / math.log(10)) for p, v in r.items()}
    for p in r:  # ∂/∂r_p [Σ s·log σ(r_a − r_b) + (1 − s)·log σ(r_b − r_a)] − λ r_p = 0
        grad = -lam * logit[p]
        for g in data:
            if p in (g.player_a, g.player_b):
                other = g.player_b if p == g.player_a else g.player_a
                grad += g.score_of(p) - sigmoid(logit[p] - logit[other])
        assert grad == pytest.approx(0.0, abs=1e-8)
    assert sum(r.values()) / len(r) == pytest.approx(1500.0, abs=1e-9)
    assert list(r.values()) == sorted(r.values(), reverse=True)


def test_draws_count_half_a_win():
    two_draws = bradley_terry(games("A", "B", draws=2) + games("A", "C", wins=1, losses=1))
    split = bradley_terry(games("A", "B", wins=1, losses=1) + games("A", "C", wins=1, losses=1))
    assert two_draws == pytest.approx(split)
    # 1 win + 2 draws = 2 points of 3: P = 2/3 ⇒ ln 2 logits apart (no prior).
    r = bradley_terry(games("A", "B", wins=1, draws=2), prior_sd=None)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(2), abs=1e-8)
    only_draws = bradley_terry(games("A", "B", draws=5))
    assert only_draws["A"] == pytest.approx(1500.0) and only_draws["B"] == pytest.approx(1500.0)


def test_an_undefeated_player_is_finite_with_the_prior_only():
    data = games("A", "B", wins=50)
    r = bradley_terry(data)
    assert math.isfinite(r["A"]) and r["A"] > r["B"]
    # stationarity of 50·(1 − σ(d)) − λ·d/2 = 0, solved by hand
    lam = prior_strength(1000.0)
    d = bisect(lambda x: 50 * (1 - sigmoid(x)) - lam * x / 2, 0.0, 50.0)
    assert r["A"] - r["B"] == pytest.approx(ELO_SCALE * d, abs=1e-6)
    with pytest.raises(ValueError, match="no finite"):
        bradley_terry(data, prior_sd=None)


def test_bradley_terry_edge_cases():
    assert bradley_terry([]) == {}
    assert bootstrap_intervals([]) == {}
    with pytest.raises(ValueError):
        bootstrap_intervals(games("A", "B", wins=1), n_boot=0)
    with pytest.raises(ValueError):
        bootstrap_intervals(games("A", "B", wins=1), level=1.5)


# ---------------------------------------------------------------------------------- bootstrap
def _width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_bootstrap_contains_the_estimate_and_shrinks_with_more_games():
    def data(k: int) -> list[GameResult]:
        return (
            games("A", "B", wins=6 * k, draws=2 * k, losses=2 * k)
            + games("B", "C", wins=5 * k, draws=1 * k, losses=4 * k)
            + games("A", "C", wins=7 * k, draws=2 * k, losses=1 * k)
        )

    small, large = data(2), data(8)
    point_small, point_large = bradley_terry(small), bradley_terry(large)
    ci_small, ci_large = bootstrap_intervals(small, seed=1), bootstrap_intervals(large, seed=1)
    assert list(ci_small) == list(point_small)  # same order: highest rating first
    for p in point_small:
        assert ci_small[p][0] <= point_small[p] <= ci_small[p][1]
        assert ci_large[p][0] <= point_large[p] <= ci_large[p][1]
        # 4x the games: about half the width (√4); allow sampling noise
        assert 0.35 < _width(ci_large[p]) / _width(ci_small[p]) < 0.7
    # deterministic for a seed; narrower at a lower level
    assert bootstrap_intervals(small, seed=1) == ci_small
    ci_50 = bootstrap_intervals(small, seed=1, level=0.5)
    for p in point_small:
        assert ci_small[p][0] <= ci_50[p][0] <= ci_50[p][1] <= ci_small[p][1]


def test_bootstrap_keeps_every_pairs_count():
    # Stratified by pair: the A-B pair has only draws, so every resample of it is all draws, while
    # C-D varies. With games pooled across pairs instead, A-B resamples would pick up C-D's results.
    # (No prior, so all-draw pairs tie their players exactly: A = B = C in every resample.)
    data = games("A", "B", draws=10) + games("C", "D", wins=10, draws=6, losses=4) + games("B", "C", draws=10)
    ci = bootstrap_intervals(data, n_boot=300, seed=0, prior_sd=None)
    point = bradley_terry(data, prior_sd=None)
    assert point["A"] == pytest.approx(point["B"]) and point["B"] == pytest.approx(point["C"])
    assert _width(ci["C"]) > 0 and _width(ci["D"]) > 0
    assert ci["A"] == pytest.approx(ci["B"]) and ci["B"] == pytest.approx(ci["C"])


# ---------------------------------------------------------------------------------- OpenSkill
def test_openskill_library_matches_its_documented_example():
    from openskill.models import PlackettLuce

    # README of openskill 6.x ("Limited Example"): two 2-player teams of default ratings, first team wins.
    model = PlackettLuce()
    r = model.rating
    [[a, _], [x, _]] = model.rate([[r(), r()], [r(), r()]])
    assert a.mu == pytest.approx(26.964294621803063, abs=1e-9)
    assert a.sigma == pytest.approx(8.177962604389991, abs=1e-9)
    assert x.mu == pytest.approx(23.035705378196937, abs=1e-9)


def test_openskill_wrapper_equals_the_library_game_by_game():
    from openskill.models import PlackettLuce

    data = [game("A", "B", 1.0), game("B", "C", 0.5), game("C", "A", 1.0), game("A", "B", 0.0), game("A", "C", 0.5)]
    ours = openskill_ratings(data)

    model = PlackettLuce()
    ref = {p: model.rating(name=p) for p in "ABC"}
    for g in data:
        ranks = {1.0: [0, 1], 0.5: [0, 0], 0.0: [1, 0]}[g.score_a]
        [[ref[g.player_a]], [ref[g.player_b]]] = model.rate([[ref[g.player_a]], [ref[g.player_b]]], ranks=ranks)
    for p in "ABC":
        assert ours[p] == pytest.approx((ref[p].mu, ref[p].sigma), abs=1e-12)
    assert list(ours) == sorted(ours, key=lambda p: -ours[p][0])


def test_openskill_single_update():
    from openskill.models import PlackettLuce

    model = PlackettLuce()
    [[win], [lose]] = model.rate([[model.rating()], [model.rating()]], ranks=[0, 1])
    ours = openskill_ratings([game("A", "B", 1.0)])
    assert ours["A"] == pytest.approx((win.mu, win.sigma))
    assert ours["B"] == pytest.approx((lose.mu, lose.sigma))
    mu0, sigma0 = 25.0, 25.0 / 3
    assert ours["A"][0] > mu0 > ours["B"][0]  # the winner's mu rises, the loser's falls
    assert ours["A"][1] < sigma0 and ours["B"][1] < sigma0  # both become more certain
    draw = openskill_ratings([game("A", "B", 0.5)])
    assert draw["A"][0] == pytest.approx(mu0) and draw["B"][0] == pytest.approx(mu0)


# ---------------------------------------------------------------------------------- payoff matrix
def test_payoff_matrix_counts_and_means():
    data = (
        games("A", "B", wins=3, draws=1)  # A scores 3.5 / 4 against B
        + [game("B", "A", 1.0)]  # … and 0 / 1 with the names the other way round
        + games("A", "C", losses=2)
    )
    players, mean, counts = payoff_matrix(data)
    assert players == ["A", "B", "C"]
    assert counts == [[0, 5, 2], [5, 0, 0], [2, 0, 0]]
    assert mean[0][1] == pytest.approx(3.5 / 5)
    assert mean[1][0] == pytest.approx(1.5 / 5)
    assert mean[0][2] == 0.0 and mean[2][0] == 1.0
    assert math.isnan(mean[0][0]) and math.isnan(mean[1][2])
    for i in range(3):  # zero-sum: mean[i][j] + mean[j][i] = 1 wherever games were played
        for j in range(3):
            if counts[i][j]:
                assert mean[i][j] + mean[j][i] == pytest.approx(1.0)
    players, mean, counts = payoff_matrix(data, players=["C", "A"])
    assert players == ["C", "A"] and counts == [[0, 2], [2, 0]] and mean[0][1] == 1.0


def test_payoff_matrix_of_outcomes():
    data = [
        game("A", "B", 1.0, outcome_a=2.0, outcome_b=-2.0),
        game("A", "B", 0.0, outcome_a=-1.0, outcome_b=1.0),
        game("A", "B", 1.0),  # no outcomes: skipped
    ]
    _, mean, counts = payoff_matrix(data, value="outcome")
    assert counts[0][1] == 2 and mean[0][1] == pytest.approx(0.5) and mean[1][0] == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        payoff_matrix(data, value="chips")


# ---------------------------------------------------------------------------------- records
def test_game_result_json_round_trip():
    g = GameResult("minimax", "random", 0.5, ENV, 1234, 1, index=7, outcome_a=0.0, outcome_b=0.0,
                   stop_reason="game_over", turns=9)
    line = g.to_json()
    assert "\n" not in line
    assert GameResult.from_json(line) == g
    assert GameResult.from_dict(json.loads(line)) == g
    minimal = GameResult("a", "b", 1.0, ENV, 3, 0)
    assert GameResult.from_json(minimal.to_json()) == minimal
    assert GameResult.from_dict({"player_a": "a", "player_b": "b", "score_a": 1, "env_id": ENV, "seed": 3, "seat_a": 0}) == minimal
    assert g.score_b == 0.5 and g.pair == ("minimax", "random") and g.seat_of("random") == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"player_a": "a", "player_b": "a", "score_a": 1.0, "seat_a": 0},
        {"player_a": "a", "player_b": "b", "score_a": 0.7, "seat_a": 0},
        {"player_a": "a", "player_b": "b", "score_a": 1.0, "seat_a": 2},
    ],
)
def test_game_result_validates(kwargs):
    with pytest.raises(ValueError):
        GameResult(env_id=ENV, seed=0, **kwargs)


# ---------------------------------------------------------------------------------- duplicate matches
def test_duplicate_matches_sum_the_seat_swapped_pair():
    data = [
        # pair k=0: A wins 2 chips as seat 0, loses 1 as seat 1 → A +1 overall: A wins the match
        game("A", "B", 1.0, seed=11, seat_a=0, index=0, outcome_a=2.0, outcome_b=-2.0, turns=3),
        game("A", "B", 0.0, seed=11, seat_a=1, index=1, outcome_a=-1.0, outcome_b=1.0, turns=2),
        # pair k=1: +1 and −1 → a drawn match
        game("A", "B", 1.0, seed=12, seat_a=0, index=2, outcome_a=1.0, outcome_b=-1.0, turns=2),
        game("A", "B", 0.0, seed=12, seat_a=1, index=3, outcome_a=-1.0, outcome_b=1.0, turns=2),
    ]
    matches = duplicate_matches(data)
    assert [(m.score_a, m.index, m.seed, m.outcome_a, m.turns) for m in matches] == [
        (1.0, 0, 11, 1.0, 5),
        (0.5, 1, 12, 0.0, 4),
    ]
    with pytest.raises(ValueError, match="even number"):
        duplicate_matches(data[:3])
    with pytest.raises(ValueError, match="outcomes"):
        duplicate_matches([game("A", "B", 1.0, seed=1, seat_a=0, index=0), game("A", "B", 1.0, seed=1, seat_a=1, index=1)])
