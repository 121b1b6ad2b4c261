"""Scripted game bots: strength vs random, valid moves only, determinism, registry errors."""

from __future__ import annotations

import math
import time

import gymnasium
import numpy as np
import pyspiel
import pytest

import turngym
from turngym.envs.games.bots import (
    KuhnNashAgent,
    MinimaxAgent,
    ScriptedAgent,
    available_agents,
    make_agent,
)
from turngym.envs.types import StopReason

TTT = "turngym/TicTacToe-v0"
C4 = "turngym/ConnectFour-v0"
KUHN = "turngym/KuhnPoker-v0"
LEDUC = "turngym/LeducPoker-v0"
LIARS = "turngym/LiarsDice-v0"
NEGOTIATION = "turngym/Negotiation-v0"
ALL_GAMES = [TTT, C4, KUHN, LEDUC, LIARS, NEGOTIATION]


def play_vs(env_id: str, agent: ScriptedAgent, opponent: ScriptedAgent, seeds) -> np.ndarray:
    """``agent`` through the VsOpponent view (seat ``seed % 2``) vs ``opponent``; the agent's outcomes.

    Every move of both sides must be valid and every game must end by the rules.
    """
    env = turngym.make(env_id, opponent=opponent)
    outcomes = []
    for seed in seeds:
        agent.reset(seed + 100_000)
        opponent.reset(seed)
        _, info = env.reset(seed=seed)
        assert info["game_seat"] == seed % 2
        game = env.unwrapped.game
        record = None
        while not game.done:
            step_info = env.step(agent(game))[-1]
            record = step_info["turn"]
            assert record.valid_action, (
                f"{agent.name} made an invalid move in {env_id} (seed {seed})"
            )
        assert record is not None and record.stop_reason is StopReason.GAME_OVER, (
            f"{env_id} seed {seed} ended by {record and record.stop_reason} (an opponent forfeit?)"
        )
        outcomes.append(record.outcome)
    return np.array(outcomes, dtype=float)


def play_hot_seat(
    env_id: str, agents: tuple[ScriptedAgent, ScriptedAgent], seed: int
) -> tuple[dict, list[str]]:
    """Both seats through the raw ``gymnasium.make`` game; returns the outcomes and every reply."""
    env = gymnasium.make(env_id)
    env.reset(seed=seed)
    game = env.unwrapped
    replies = []
    info: dict = {}
    while not game.done:
        reply = agents[game.current_seat](game)
        replies.append(reply)
        _, _, _, _, info = env.step(reply)
        assert info["turn"].valid_action, f"invalid reply {reply!r} in {env_id} (seed {seed})"
    assert info["turn"].stop_reason is StopReason.GAME_OVER
    return info["outcomes"], replies


def tally(outcomes: np.ndarray) -> tuple[int, int, int]:
    return int((outcomes > 0).sum()), int((outcomes == 0).sum()), int((outcomes < 0).sum())


# ------------------------------------------------------------------------------------ tic-tac-toe
def test_minimax_never_loses_to_random():
    outcomes = play_vs(
        TTT, make_agent("minimax", TTT, seed=1), make_agent("random", TTT, seed=2), range(200)
    )
    wins, draws, losses = tally(outcomes)
    assert losses == 0
    assert wins > 150, (wins, draws, losses)


def test_minimax_self_play_is_always_a_draw():
    for seed in range(20):
        outcomes, _ = play_hot_seat(
            TTT,
            (make_agent("minimax", TTT, seed=seed), make_agent("minimax", TTT, seed=seed + 1)),
            seed,
        )
        assert outcomes == {0: 0.0, 1: 0.0}


@pytest.mark.parametrize("seat", [0, 1])
def test_minimax_never_loses_against_any_line(seat):
    """Exhaustive: every opponent move at every node, every optimal reply of minimax."""
    env = gymnasium.make(TTT)
    env.reset(seed=0)
    agent = MinimaxAgent(seed=0)
    stack, positions = [env.unwrapped], 0
    while stack:
        game = stack.pop()
        positions += 1
        if game.done:
            assert game.outcomes[seat] >= 0, game.state.history()
            continue
        moves = agent.optimal_moves(game) if game.current_seat == seat else game.legal_action_ids()
        for action in moves:
            child = game.fork()
            child.step(f"[{child.move_label(action)}]")
            stack.append(child)
    assert positions > 100


def test_minimax_prefers_the_fastest_win():
    env = gymnasium.make(TTT)
    env.reset(seed=0)
    game = env.unwrapped
    for cell in ("1", "4", "2", "5"):  # X: 1, 2; O: 4, 5 — X wins at 3 now (O would win at 6 later)
        game.step(cell)
    assert {make_agent("minimax", TTT, seed=s)(game) for s in range(10)} == {"[3]"}


def test_tictactoe_heuristic_wins_and_blocks():
    env = gymnasium.make(TTT)
    env.reset(seed=0)
    game = env.unwrapped
    for cell in ("1", "4", "9"):  # X: 1, 9; O: 4 — O must block at 5
        game.step(cell)
    assert {make_agent("heuristic", TTT, seed=s)(game) for s in range(10)} == {"[5]"}
    game.step("[7]")  # O ignores the threat (4, 7: no line left for O); X wins at 5
    assert {make_agent("heuristic", TTT, seed=s)(game) for s in range(10)} == {"[5]"}


# ------------------------------------------------------------------------------------ strength vs random
@pytest.mark.parametrize(
    "env_id, games",
    [(TTT, 100), (C4, 60), (KUHN, 1000), (LEDUC, 400), (LIARS, 200), (NEGOTIATION, 200)],
)
def test_heuristic_beats_random(env_id, games):
    outcomes = play_vs(
        env_id,
        make_agent("heuristic", env_id, seed=3),
        make_agent("random", env_id, seed=4),
        range(games),
    )
    wins, draws, losses = tally(outcomes)
    if env_id in (KUHN, LEDUC):  # chips: folding weak hands loses often but little
        assert outcomes.mean() > 0, (outcomes.mean(), wins, draws, losses)
    else:
        assert wins > losses, (wins, draws, losses)


def test_alphabeta_beats_random():
    outcomes = play_vs(
        C4, make_agent("alphabeta", C4, seed=5), make_agent("random", C4, seed=6), range(30)
    )
    wins, _, _ = tally(outcomes)
    assert wins >= 27


def test_alphabeta_beats_heuristic_and_is_fast():
    agent = make_agent("alphabeta", C4, seed=7)
    times: list[float] = []

    def timed(game):
        start = time.perf_counter()
        reply = agent(game)
        times.append(time.perf_counter() - start)
        return reply

    timed.reset = agent.reset  # type: ignore[attr-defined]
    timed.name = agent.name  # type: ignore[attr-defined]
    outcomes = play_vs(C4, timed, make_agent("heuristic", C4, seed=8), range(6))
    assert tally(outcomes)[0] >= 5
    assert 1000 * float(np.mean(times)) < 100, (
        f"alphabeta takes {1000 * np.mean(times):.1f} ms per move"
    )


def test_alphabeta_takes_a_win_and_blocks():
    env = gymnasium.make(C4)
    env.reset(seed=0)
    game = env.unwrapped
    for column in ("1", "7", "1", "7", "1"):  # X has three in column 1
        game.step(column)
    # O must block column 1 (its own three in column 7 is not yet there)
    assert {make_agent("alphabeta", C4, seed=s)(game) for s in range(5)} == {"[1]"}
    assert {make_agent("heuristic", C4, seed=s)(game) for s in range(5)} == {"[1]"}
    game.step("[2]")  # O blunders; X wins in column 1
    assert {make_agent("alphabeta", C4, seed=s)(game) for s in range(5)} == {"[1]"}


def test_kuhn_nash_beats_random_over_2000_hands():
    outcomes = play_vs(
        KUHN, make_agent("nash", KUHN, seed=9), make_agent("random", KUHN, seed=10), range(2000)
    )
    mean = outcomes.mean()
    half_width = 1.96 * outcomes.std(ddof=1) / math.sqrt(len(outcomes))
    assert mean - half_width > 0, f"mean {mean:+.3f} ± {half_width:.3f}"


def test_kuhn_nash_expected_value_vs_random_is_five_36ths():
    """Exact, by enumerating the tree: alpha = 1/6 wins 1/9 as seat 0 and 1/6 as seat 1."""
    agent = KuhnNashAgent(alpha=1 / 6)

    def value(state, me):
        if state.is_terminal():
            return state.returns()[me]
        if state.is_chance_node():
            return sum(p * value(state.child(a), me) for a, p in state.chance_outcomes())
        seat, history = state.current_player(), state.history()
        p_bet = agent.bet_probability(seat, history[seat], history[2:]) if seat == me else 0.5
        return (1 - p_bet) * value(state.child(0), me) + p_bet * value(state.child(1), me)

    game = pyspiel.load_game("kuhn_poker")
    values = [value(game.new_initial_state(), seat) for seat in (0, 1)]
    assert values == pytest.approx([1 / 9, 1 / 6])
    assert sum(values) / 2 == pytest.approx(5 / 36)


@pytest.mark.parametrize("alpha", [0.0, 1 / 6, 1 / 3])
def test_kuhn_nash_is_an_equilibrium(alpha):
    """OpenSpiel's exploitability of the closed-form strategy is 0 for every alpha in [0, 1/3]."""
    agent = KuhnNashAgent(alpha=alpha)
    table = {}
    for card in range(3):
        for seat, actions in ((0, []), (1, [0]), (1, [1]), (0, [0, 1])):
            key = str(card) + "".join(
                "pb"[a] for a in actions
            )  # kuhn_poker information state strings
            p_bet = agent.bet_probability(seat, card, actions)
            table[key] = [(0, 1 - p_bet), (1, p_bet)]
    exploitability = pyspiel.exploitability(
        pyspiel.load_game("kuhn_poker"), pyspiel.TabularPolicy(table)
    )
    assert exploitability == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------------------ every agent, every game
@pytest.mark.parametrize("env_id", ALL_GAMES)
def test_every_agent_only_makes_valid_moves(env_id):
    for name in available_agents(env_id):
        agent = make_agent(name, env_id, seed=11)
        games = (
            10 if name == "alphabeta" else 20
        )  # alphabeta's own 30-game test checks validity too
        play_vs(env_id, agent, make_agent("random", env_id, seed=12), range(games))
        for seed in range(
            3
        ):  # self-play reaches states random play rarely does (accepting offers…)
            play_hot_seat(
                env_id,
                (make_agent(name, env_id, seed=seed), make_agent(name, env_id, seed=seed + 50)),
                seed,
            )


@pytest.mark.parametrize("env_id", ALL_GAMES)
def test_agents_are_deterministic_given_seed(env_id):
    for name in available_agents(env_id):
        runs = []
        for _ in range(2):
            pair = (make_agent(name, env_id, seed=21), make_agent(name, env_id, seed=22))
            runs.append([play_hot_seat(env_id, pair, seed)[1] for seed in range(3)])
        assert runs[0] == runs[1], name
        # reset(seed) restarts the stream
        agent = make_agent(name, env_id, seed=0)
        first = play_hot_seat(env_id, (agent, agent), 5)[1]
        agent.reset(0)
        assert play_hot_seat(env_id, (agent, agent), 5)[1] == first, name


def test_replies_are_bracketed_canonical_labels():
    env = gymnasium.make(TTT)
    env.reset(seed=0)
    reply = make_agent("first", TTT)(env.unwrapped)
    assert reply == "[1]"
    env = gymnasium.make(NEGOTIATION)
    env.reset(seed=0)
    game = env.unwrapped
    reply = make_agent("heuristic", NEGOTIATION)(game)
    assert reply.startswith("[") and reply.endswith("]")
    assert game._parse_move(reply)[1] is None


def test_heuristic_without_env_id_dispatches_on_the_game():
    agent = make_agent("heuristic", seed=0)
    for env_id in (TTT, C4):
        play_hot_seat(env_id, (agent, make_agent("random", env_id, seed=1)), 0)


def test_wrong_game_is_refused():
    env = gymnasium.make(C4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="minimax"):
        make_agent("minimax")(env.unwrapped)


# ------------------------------------------------------------------------------------ registry
def test_available_agents():
    assert available_agents(TTT) == ["first", "heuristic", "minimax", "random"]
    assert available_agents("ConnectFour-v0") == ["alphabeta", "first", "heuristic", "random"]
    assert "nash" in available_agents(KUHN) and "nash" not in available_agents(LEDUC)
    assert available_agents("someone/PluginGame-v0") == ["first", "random"]
    assert set(available_agents()) == {
        "alphabeta",
        "first",
        "heuristic",
        "minimax",
        "nash",
        "random",
    }


def test_make_agent_errors_quote_the_name_and_suggest():
    with pytest.raises(ValueError) as err:
        make_agent("minimx", TTT)
    message = str(err.value)
    assert "'minimx'" in message and "Did you mean 'minimax'" in message
    assert "first, heuristic, minimax, random" in message

    with pytest.raises(ValueError) as err:
        make_agent("minimax", C4)  # a real agent, wrong game
    message = str(err.value)
    assert "'minimax' does not play" in message and "alphabeta" in message
    assert "turngym/TicTacToe-v0" in message

    with pytest.raises(ValueError, match="'nash'"):
        make_agent("nash", LEDUC)
    with pytest.raises(ValueError, match="no ':value'"):
        make_agent("random:3", TTT)
    with pytest.raises(ValueError, match="depth"):
        make_agent("alphabeta:0", C4)
    with pytest.raises(ValueError, match="alpha"):
        make_agent("nash:0.5", KUHN)


def test_make_agent_parameters():
    assert make_agent("alphabeta:6", C4).depth == 6
    assert make_agent("alphabeta", C4, depth=2).depth == 2
    assert make_agent("nash:0.25", KUHN).alpha == 0.25
    agent = make_agent("random", TTT, seed=3)
    assert agent.name == "random" and callable(agent.reset)


def test_each_game_registers_its_bots_as_env_agents():
    from turngym.agents.specs import resolve_agent

    for env_id in ALL_GAMES:
        assert sorted(turngym.spec(env_id).agents) == available_agents(env_id)
    assert isinstance(resolve_agent("minimax", TTT, seed=1), MinimaxAgent)
    assert resolve_agent("alphabeta:3", C4, seed=1).depth == 3  # name:value still reaches the bot
    with pytest.raises(ValueError, match="Did you mean 'minimax'"):
        resolve_agent("minimx", TTT)
