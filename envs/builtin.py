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
    register_ablation_envs()
    register_game_ids()
    register_search_qa_ids()
    register_household_ids()
    register_swe_ids()


def register_ablation_envs() -> None:
    """The purpose-built environments of ``turngym ablate`` (:mod:`turngym.envs.ablation`)."""
    register(
        "turngym/PingFarm-v0", "turngym.envs.ablation:PingFarmEnv", family="toy",
        description="Vowels with a farmable 'ping' (+0.1 per p); G-RA δ 0.8. Ablation study 'gating'.",
        max_turns=10, reward_bounds=(0.0, 1.5), gate_threshold=0.8, num_seats=1,
    )
    register(
        "turngym/KeyTurn-v0", "turngym.envs.ablation:KeyTurnEnv", family="toy",
        description="Turn 1's digits decide the outcome; a vowel continues (+0.1). Ablation study 'turn-credit'.",
        max_turns=10, reward_bounds=(0.0, 1.1), gate_threshold=None, num_seats=1, tags=("no-grader",),
    )
    register(
        "turngym/Lookup-v0", "turngym.envs.ablation:LookupEnv", family="toy",
        description="Look up a hidden letter, then type it; only the answer is scored. Ablation study 'info-gain'.",
        max_turns=2, reward_bounds=(0.0, 1.0), gate_threshold=None, num_seats=1, tags=("no-grader",),
    )
    register(
        "turngym/FlakyVowels-v0", "turngym.envs.ablation:FlakyVowelsEnv", family="toy",
        description="Vowels whose 'e' service may die (fail_rate); ablation study 'failures'.",
        max_turns=10, reward_bounds=(0.0, 1.0), gate_threshold=None, num_seats=1,
    )
    register(
        "turngym/VowelDuel-v0", "turngym.envs.ablation:VowelDuelEnv", family="toy",
        description="Two seats type vowels, higher share wins; Player 0 has a head start. Ablation study 'role-baseline'.",
        max_turns=4, reward_bounds=(-1.5, 1.0), gate_threshold=None, num_seats=2,
    )
