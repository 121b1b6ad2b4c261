"""Every game rejects huge replies quickly, with a short corrective observation (no quadratic parsing,
no int() of 100k digits)."""

import gymnasium
import pytest

import turngym  # noqa: F401  (registers the ids)

# TicTacToe is left out on purpose: its cells are single labels, so "[9]" * 2000 names one move (9)
# repeated and is accepted as that move (a repeated identical move is not an ambiguity).
GAMES = ["turngym/ConnectFour-v0", "turngym/KuhnPoker-v0", "turngym/LeducPoker-v0", "turngym/LiarsDice-v0", "turngym/Negotiation-v0"]


@pytest.mark.parametrize("env_id", GAMES)
@pytest.mark.parametrize(
    "text",
    ["1" * 100_000, "1, " * 30_000, "bid " + "9" * 50_000 + " 2", "[9]" * 2_000, "x" * 199_999],
    ids=["digits", "commas", "huge-bid", "brackets", "letters"],
)
def test_huge_replies_are_rejected_quickly(env_id, text):
    env = gymnasium.make(env_id, error_allowance=1).unwrapped
    env.reset(seed=1)
    obs, reward, terminated, _, info = env.step(text)
    assert info["turn"].valid_action is False and not terminated
    assert env.action_format in obs and len(obs) < 5_000
