"""The example plugin ``examples/turngym-guess-number``: discovery through the entry point, and the
behaviour of :class:`GuessNumberEnv` (it is the template newcomers copy, so it must be right).

Discovery needs the plugin installed (CI runs ``pip install -e examples/turngym-guess-number``
first); the behaviour tests import the example from its folder when it is not installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import turngym
from turngym.envs import EpisodeOver, StopReason

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "turngym-guess-number"
ENV_ID = "guessnumber/GuessNumber-v0"


def _installed() -> bool:
    try:
        importlib.metadata.distribution("turngym-guess-number")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# Decided before the fallback below puts the example folder (and any *.egg-info in it) on sys.path.
INSTALLED = _installed()

try:
    import turngym_guess_number
except ImportError:  # not installed: use the example's source folder
    sys.path.insert(0, str(EXAMPLE))
    import turngym_guess_number

from turngym_guess_number.env import HIGH, LOW, GuessNumberEnv


# ----------------------------------------------------------------------------- discovery
@pytest.mark.skipif(
    not INSTALLED,
    reason="distribution 'turngym-guess-number' is not installed "
    "(run: pip install -e examples/turngym-guess-number)",
)
def test_installed_plugin_is_discovered_through_the_entry_point(tmp_path: Path) -> None:
    eps = importlib.metadata.entry_points(group="turngym.envs")
    assert any(ep.value == "turngym_guess_number:register" for ep in eps)
    # A fresh interpreter, so the registry starts empty and only the entry point can add the id.
    code = (
        "import json, turngym\n"
        f"spec = turngym.registry().get({ENV_ID!r})\n"
        "print(json.dumps(None if spec is None else spec.to_dict()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    spec = json.loads(out.stdout.strip().splitlines()[-1])
    assert spec is not None, f"{ENV_ID} missing from turngym.registry(); stderr:\n{out.stderr}"
    assert spec["family"] == "toy"
    assert spec["max_turns"] == 8
    assert spec["invalid_action_allowance"] == 3
    assert spec["entry_point"] == "turngym_guess_number.env:GuessNumberEnv"


# ----------------------------------------------------------------------------- behaviour
def _binary_search(env: GuessNumberEnv, seed: int) -> list[dict]:
    obs, info = env.reset(seed=seed)
    assert info == {"system_prompt": env.system_prompt, "seat": 0}
    lo, hi, records = LOW, HIGH, []
    while True:
        guess = (lo + hi) // 2
        obs, reward, terminated, truncated, info = env.step(f"[{guess}]")
        records.append(info["turn"])
        if terminated or truncated:
            return records
        if "higher" in obs:
            lo = guess + 1
        else:
            assert "lower" in obs
            hi = guess - 1


@pytest.mark.parametrize("seed", range(0, 300, 7))
def test_binary_search_solves_within_seven_guesses(seed: int) -> None:
    records = _binary_search(GuessNumberEnv(), seed)
    assert len(records) <= 7
    last = records[-1]
    assert last.terminated and not last.truncated
    assert last.stop_reason == StopReason.SOLVED
    assert last.outcome == 1.0
    assert all(r.outcome is None and r.stop_reason is None for r in records[:-1])
    assert records[0].components == {"closer": 0.0}  # first guess: nothing to compare with


def test_reward_invariant_and_bounds_under_random_play() -> None:
    rng = np.random.default_rng(0)
    junk = ["", "hello", b"\xff\xfe", "[0]", "[101]", "[3] [4]", "7" * 100_000, "\x00", None]
    env = GuessNumberEnv()
    for seed in range(60):
        env.reset(seed=seed)
        for _ in range(12):
            if rng.random() < 0.3:
                action = junk[int(rng.integers(len(junk)))]
            else:
                action = env.sample_valid_action(rng)
            obs, reward, terminated, truncated, info = env.step(action)
            record = info["turn"]
            assert isinstance(obs, str) and reward == record.reward
            assert record.reward_consistent()
            assert -0.1 <= reward <= 1.1
            if terminated:
                break


def test_closer_component() -> None:
    env = GuessNumberEnv()
    env.reset(seed=5)
    secret = env._secret
    far, near = (HIGH, secret + 1) if secret < HIGH - 1 else (LOW, secret - 1)
    assert env.step(f"[{far}]")[4]["turn"].components == {"closer": 0.0}
    assert env.step(f"[{near}]")[4]["turn"].components == {"closer": 0.1}
    assert env.step(f"[{far}]")[4]["turn"].components == {"closer": -0.1}
    _, reward, terminated, _, info = env.step(str(secret))  # a bare integer is accepted too
    assert terminated and info["turn"].components == {"closer": 0.1}
    assert reward == pytest.approx(1.1)


@pytest.mark.parametrize(
    "reply", ["", "  ", "no idea", "[0]", "[101]", "[-5]", "[1] [2]", "7" * 100_000, "x" * 300_000,
              b"\xff\xfe\x00", "\x00", "ß中文✓", None, 42],
)
def test_invalid_reply_is_corrected_not_raised(reply: object) -> None:
    env = GuessNumberEnv()
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(reply)
    record = info["turn"]
    assert not record.valid_action
    assert record.components == {"format": -0.1} and reward == pytest.approx(-0.1)
    assert not terminated and not truncated
    assert env.action_format in obs
    # The episode goes on, and the invalid reply did not count as the "previous guess".
    assert env.step("[50]")[4]["turn"].components == {"closer": 0.0}


def test_same_seed_same_episode_and_fork_continues_identically() -> None:
    def play(env: GuessNumberEnv, rng: np.random.Generator) -> list:
        out = []
        for _ in range(6):
            obs, reward, term, trunc, info = env.step(env.sample_valid_action(rng) or "[1]")
            out.append((obs, reward, term, info["turn"].to_dict()))
            if term:
                break
        return out

    a, b = GuessNumberEnv(), GuessNumberEnv()
    assert a.reset(seed=11) == b.reset(seed=11)
    assert play(a, np.random.default_rng(3)) == play(b, np.random.default_rng(3))

    env = GuessNumberEnv()
    env.reset(seed=12)
    env.step("[50]")
    twin = env.fork()
    assert twin is not env
    assert play(twin, np.random.default_rng(9)) == play(env, np.random.default_rng(9))


def test_episode_end_stop_and_step_after_end() -> None:
    env = GuessNumberEnv()
    with pytest.raises(Exception):  # Gymnasium's ResetNeeded
        env.step("[50]")
    env.reset(seed=2)
    env.step("[50]")
    assert env.stop(StopReason.TURN_LIMIT) == {0: 0.0}
    assert env.sample_valid_action(np.random.default_rng(0)) is None
    with pytest.raises(EpisodeOver):
        env.step("[50]")
    with pytest.raises(EpisodeOver):
        env.stop(StopReason.TURN_LIMIT)
    _binary_search(env, seed=3)  # solved ⇒ over
    with pytest.raises(EpisodeOver):
        env.step("[50]")


def test_standard_wrappers_compute_the_outcome() -> None:
    turngym_guess_number.register()  # idempotent; makes the id available without the entry point
    env = turngym.make(ENV_ID)
    env.reset(seed=4)
    secret = env.unwrapped._secret
    wrong = LOW if secret != LOW else HIGH
    for t in range(8):  # never right: the 8th turn is truncated by the turn limit, outcome 0
        obs, reward, terminated, truncated, info = env.step(f"[{wrong}]")
    record = info["turn"]
    assert truncated and not terminated and record.stop_reason == StopReason.TURN_LIMIT
    assert record.outcome == 0.0 and record.reward_consistent()

    env.reset(seed=4)
    for t in range(4):  # the 4th invalid reply exceeds the allowance of 3
        obs, reward, terminated, truncated, info = env.step("not a number")
    assert truncated and info["turn"].stop_reason == StopReason.INVALID_ACTION
    assert info["turn"].outcome == 0.0 and reward == pytest.approx(-0.1)
