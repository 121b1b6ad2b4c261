"""Example turngym plugin: registers ``guessnumber/GuessNumber-v0``.

turngym finds this function through the ``turngym.envs`` entry point declared in ``pyproject.toml``
and calls it, with no arguments, the first time its registry is read (``turngym list``,
``turngym.make``, ``turngym.registry()``…).
"""

from __future__ import annotations

ENV_ID = "guessnumber/GuessNumber-v0"


def register() -> None:
    import turngym  # imported here so that importing this package alone stays cheap

    turngym.register(
        ENV_ID,
        # "module:Class", imported only when the env is made.
        "turngym_guess_number.env:GuessNumberEnv",
        family="toy",
        description="Guess a hidden number from 1 to 100 from higher/lower hints.",
        max_turns=8,  # binary search needs at most 7 guesses
        invalid_action_allowance=3,  # the 4th malformed reply ends the episode (outcome 0)
        # Step reward: "closer" ±0.1 or "format" −0.1, plus the outcome 1.0 on the solving guess.
        reward_bounds=(-0.1, 1.1),
        # G-RA: the dense rewards count only in episodes whose outcome reaches 0.5 (solved ones).
        gate_threshold=0.5,
    )
