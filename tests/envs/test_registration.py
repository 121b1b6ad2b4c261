import gymnasium
import pytest

import turngym
from turngym.envs.registration import UnknownEnvironment, register, spec
from turngym.envs.wrappers import TurnLimit


def test_builtin_games_are_in_gymnasiums_registry(game_id):
    assert game_id in gymnasium.envs.registry
    env = gymnasium.make(game_id)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and info["seat"] == 0


def test_the_six_games_are_registered():
    names = {i.split("/")[1] for i, s in turngym.registry().items() if s.family == "game"}
    assert {"TicTacToe-v0", "ConnectFour-v0", "KuhnPoker-v0", "LeducPoker-v0", "LiarsDice-v0", "Negotiation-v0"} <= names


def test_unknown_id_suggests_the_closest():
    with pytest.raises(UnknownEnvironment, match=r"Did you mean: 'turngym/TicTacToe-v0'\?"):
        spec("turngym/TicTacToo-v0")
    with pytest.raises(UnknownEnvironment, match="No turngym environment 'nothing/Like-v9'"):
        turngym.make("nothing/Like-v9")


def test_make_applies_the_spec_turn_limit_and_overrides():
    env = turngym.make("turngym/TicTacToe-v0")
    assert isinstance(env, TurnLimit) and env.max_turns == 50
    env = turngym.make("turngym/TicTacToe-v0", max_turns=3)
    assert env.max_turns == 3
    env = turngym.make("turngym/TicTacToe-v0", max_turns=None)
    assert not isinstance(env, TurnLimit)


def test_make_reports_bad_constructor_kwargs_with_the_id():
    with pytest.raises(TypeError, match=r"while making 'turngym/TicTacToe-v0' with kwargs \{'no_such_arg': 1\}"):
        turngym.make("turngym/TicTacToe-v0", no_such_arg=1)


def test_register_validates_its_arguments():
    with pytest.raises(ValueError, match="must look like 'namespace/Name-vN', got 'Bad'"):
        register("Bad", "x:Y")
    with pytest.raises(ValueError, match="family must be one of"):
        register("t/Bad-v0", "x:Y", family="weird")
    with pytest.raises(ValueError, match=r"low <= high, got \(1.0, 0.0\)"):
        register("t/Bad-v0", "x:Y", reward_bounds=(1.0, 0.0))


def test_opponent_is_refused_for_single_agent_envs():
    from turngym.envs.core import TurnEnv

    class Solo(TurnEnv):
        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return "", {}

    register("test/Solo-v0", Solo, family="toy")
    with pytest.raises(ValueError, match="single-agent environment; it takes no opponent"):
        turngym.make("test/Solo-v0", opponent=lambda game: "1")
