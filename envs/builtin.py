"""Registration of turngym's built-in environment ids. Imported by ``turngym.envs``."""

from __future__ import annotations

from turngym.envs.games.ids import register_ids as register_game_ids
from turngym.envs.household.ids import register_ids as register_household_ids
from turngym.envs.registration import register
from turngym.envs.search_qa.ids import register_ids as register_search_qa_ids
from turngym.envs.swe.ids import register_ids as register_swe_ids


def register_builtin_envs() -> None:
    """Register every built-in id under the ``turngym/`` namespace."""
    register(
        "turngym/Vowels-v0",
        "turngym.envs.toy:VowelsEnv",
        family="toy",
        description="Three turns of 'type vowels'; reward = vowel share. The CI learning test's task.",
        max_turns=10,
        reward_bounds=(0.0, 2.0),
        gate_threshold=None,
        num_seats=1,
    )
    register(
        "turngym/Arithmetic-v0",
        "turngym.envs.toy:ArithmeticEnv",
        family="toy",
        description="One turn: 'What is a+b?'; 1 for the right sum. The single-turn GRPO benchmark task.",
        max_turns=1,
        reward_bounds=(0.0, 1.0),
        gate_threshold=None,
        num_seats=1,
    )
    register_game_ids()
    register_search_qa_ids()
    register_household_ids()
    register_swe_ids()
