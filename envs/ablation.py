"""Toy environments of the ablation studies (``turngym ablate``), one per mechanism.

Each is minimal and deterministic, and built for a tiny character-level model: every reward is a
share of characters of a reply, so a randomly initialised policy already earns a graded, varied
reward and GRPO has signal from the first step. Each class docstring states its rules, rewards and
why it isolates its mechanism; :mod:`turngym.training.ablate` holds the studies that train on them.

Action-dependent randomness (the length of a :class:`KeyTurnEnv` episode, the failures of
:class:`FlakyVowelsEnv`) is a hash of the episode's salt (drawn from the reset seed) and the reply,
so the same seed and the same replies always give the same episode.
"""

from __future__ import annotations

import abc
import copy
import zlib
from typing import Any

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.multiagent import TurnGame
from turngym.envs.types import StopReason, TurnRecord

VOWELS = "aeiouAEIOU"
DIGITS = "0123456789"


def char_share(text: str | None, alphabet: str) -> float:
    """The share of ``text``'s characters that are in ``alphabet`` (0 for an empty or missing reply)."""
    if not text:
        return 0.0
    return sum(c in alphabet for c in text) / len(text)


def hashed_uniform(salt: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the episode salt and ``parts`` (crc32 of their text)."""
    key = "|".join([str(salt), *map(str, parts)]).encode("utf-8", "surrogatepass")
    return zlib.crc32(key) / 2**32


class _TextTask(TurnEnv, abc.ABC):
    """Shared book-keeping of the single-agent ablation envs: turn counter, replies, ``stop``, ``fork``.

    Subclasses say what each turn asks (:meth:`_prompt`) and what the replies so far score
    (:meth:`_outcome_so_far`), and write ``step`` with :meth:`_reply`, :meth:`_take`, :meth:`_finish`
    and :meth:`_continue`."""

    system_prompt = ""
    action_format = ""

    def __init__(self, turns: int, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        if turns < 1:
            raise ValueError(f"turns must be >= 1, got {turns!r}")
        self.turns = int(turns)
        self._t = 0
        self._replies: list[str] = []
        self._over = True
        self._salt = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._t, self._replies, self._over = 0, [], False
        self._salt = int(self.np_random.integers(2**31))
        self._new_episode()
        return self._prompt(), {"system_prompt": self.system_prompt, "seat": 0, **self._reset_info()}

    def _new_episode(self) -> None:
        """Draw the episode's hidden state from ``self.np_random`` (after the salt)."""

    def _reset_info(self) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def _prompt(self) -> str:
        """The observation that asks for the current turn's reply."""

    def _reply(self, action: Any) -> tuple[str, str | None]:
        """The reply's text ('' for a malformed action) and the problem with it, if any."""
        if self._over:
            raise EpisodeOver("the episode is over; call reset()")
        text, problem = action_text(action)
        return (text or "") if problem is None else "", problem

    def _finish(self, record: TurnRecord, outcome: float, obs: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._over = True
        record.outcome = float(outcome)
        record.terminated = True
        record.stop_reason = StopReason.SOLVED if outcome >= 1.0 else StopReason.FAILED
        record.reward = record.turn_reward + record.outcome
        return obs, record.reward, True, False, {"turn": record, "seat": 0}

    def _continue(self, record: TurnRecord, obs: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        record.reward = record.turn_reward
        return obs, record.reward, False, False, {"turn": record, "seat": 0}

    @abc.abstractmethod
    def _outcome_so_far(self) -> float:
        """The outcome the replies so far earn (also what ``stop`` reports), in [0, 1]."""

    def _take(self, text: str, problem: str | None) -> str:
        """Keep the reply and move to the next turn; returns the observation's prefix naming a
        malformed action ('' when there was none)."""
        self._replies.append(text)
        self._t += 1
        return f"{problem}. {self.action_format}\n" if problem else ""

    def stop(self, reason: StopReason) -> dict[int, float]:
        if self._over:
            raise EpisodeOver("the episode is already over")
        self._over = True
        return {0: self._outcome_so_far()}

    def fork(self) -> _TextTask:
        return copy.deepcopy(self)

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        if self._over:
            return None
        return "".join(VOWELS[int(i)] for i in rng.integers(0, len(VOWELS), size=int(rng.integers(1, 6))))


class _VowelTask(_TextTask):
    """``turns`` turns of "type vowels"; the outcome is the mean vowel share of the replies."""

    system_prompt = "Type vowels only."
    action_format = "Reply with vowels, e.g. aeiou."

    def _prompt(self) -> str:
        return f"Turn {self._t + 1} of {self.turns}. Type vowels."

    def _outcome_so_far(self) -> float:
        return float(np.mean([char_share(r, VOWELS) for r in self._replies])) if self._replies else 0.0

    def _finish_or_continue(self, record: TurnRecord, obs: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """End the episode after the last turn (reporting the score), else ask for the next reply."""
        if self._t >= self.turns:
            outcome = self._outcome_so_far()
            return self._finish(record, outcome, obs + f"Done. Mean vowel share {outcome:.2f}.")
        return self._continue(record, obs + self._prompt())


class PingFarmEnv(_VowelTask):
    """``turngym/PingFarm-v0`` (study ``gating``): a dense reward that can be farmed without progress.

    Rules: ``turns`` (3) turns of "type vowels". Outcome: the mean vowel share of the replies, in [0, 1].
    Dense turn reward (component ``ping``): +0.1 for every ``p`` in the reply, at most 0.5 a turn —
    a "tool call" that pays each time whether or not it helps. A ``p`` also takes the place of a
    vowel, so farming pings lowers the outcome: per character a ping pays 0.1 while a vowel adds
    1/(turns × reply length) ≈ 0.04 to the outcome. Registered G-RA threshold δ = 0.8.

    Why it isolates G-RA: ungated accumulation (D-RA) maximises ``outcome + Σ ping``, whose optimum
    is five pings a turn (outcome ≈ 0.4 for 8-character replies); gated accumulation credits pings
    only once the outcome reaches δ, so its optimum keeps the outcome ≥ 0.8. Nothing else differs.
    """

    PING_REWARD = 0.1
    PING_CAP = 0.5

    def __init__(self, turns: int = 3, render_mode: str | None = None):
        super().__init__(turns, render_mode)


    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        text, problem = self._reply(action)
        ping = min(self.PING_REWARD * text.count("p"), self.PING_CAP)
        record = TurnRecord(turn=self._t, seat=0, reward=0.0, components={"ping": ping}, valid_action=problem is None)
        obs = self._take(text, problem)
        return self._finish_or_continue(record, obs)


class KeyTurnEnv(_TextTask):
    """``turngym/KeyTurn-v0`` (study ``turn-credit``): varying turn counts, credit in one turn.

    Rules: up to ``max_turns`` (5) turns. The outcome is the digit share of the **first** reply only
    (the key turn), in [0, 1]; later replies never change it. A reply that contains a vowel keeps the
    episode going and earns the dense component ``progress`` = 0.1; a reply without a vowel ends it
    (``progress`` 0). So the number of turns varies within a GRPO group and the policy controls it,
    and every extra turn adds intermediate reward — the setting of verl issue 7244, where a per-turn
    baseline whose number of terms depends on the stopping turn is biased.

    Why it isolates turn credit: the outcome depends on one turn whose position is fixed, the dense
    signal on a disjoint character set (vowels vs digits), and the length on the policy's choices;
    estimators differ only in how they spread outcome and dense terms over the turns.
    """

    system_prompt = "Turn 1: type digits. Later turns: type a vowel to continue."
    action_format = "Reply with text, e.g. 12345 or aeiou."
    PROGRESS_REWARD = 0.1

    def __init__(self, max_turns: int = 5, render_mode: str | None = None):
        super().__init__(max_turns, render_mode)

    def _prompt(self) -> str:
        return "Turn 1: type digits." if self._t == 0 else f"Turn {self._t + 1}: type a vowel to continue."

    def _outcome_so_far(self) -> float:
        return char_share(self._replies[0], DIGITS) if self._replies else 0.0

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        text, problem = self._reply(action)
        goes_on = any(c in VOWELS for c in text)
        record = TurnRecord(turn=self._t, seat=0, reward=0.0,
                            components={"progress": self.PROGRESS_REWARD if goes_on else 0.0}, valid_action=problem is None)
        obs = self._take(text, problem)
        if not goes_on or self._t >= self.turns:
            outcome = self._outcome_so_far()
            return self._finish(record, outcome, obs + f"Done. Digit share of turn 1: {outcome:.2f}.")
        return self._continue(record, obs + self._prompt())


class LookupEnv(_TextTask):
    """``turngym/Lookup-v0`` (study ``info-gain``): a sparse search task; only the answer is scored.

    Rules: two turns. The hidden answer is one letter of ``bdgkm``, drawn from the seed and given
    to the learner as ``info["answer"]`` (the gold answer information gain scores). Turn 1 is the
    lookup: a reply containing a vowel is a good query and the observation reveals the answer
    (``Found: the answer is b. b b b b``); any other reply finds nothing. Turn 2 is the answer:
    the outcome is the share of the reply's characters equal to the answer letter, in [0, 1].
    There is no dense reward: turn 1 is credited only through the outcome, or through IGPO's
    information gain — how much the lookup's observation raised the policy's log-probability of
    the answer.

    Why it isolates information gain: a good lookup is necessary to beat guessing (1/5 of the
    letters), the outcome alone credits it only once the policy has learned to copy the revealed
    letter, and information gain credits it per turn from the policy's own beliefs.
    """

    system_prompt = "Look up the answer, then type it."
    action_format = "Reply with text."
    LETTERS = "bdgkm"

    def __init__(self, render_mode: str | None = None):
        super().__init__(2, render_mode)
        self._answer = "b"

    def _new_episode(self) -> None:
        self._answer = self.LETTERS[int(self.np_random.integers(len(self.LETTERS)))]

    def _reset_info(self) -> dict[str, Any]:
        return {"answer": self._answer}

    def _prompt(self) -> str:
        return "Search:"

    def _outcome_so_far(self) -> float:
        return char_share(self._replies[1], self._answer) if len(self._replies) > 1 else 0.0

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        text, problem = self._reply(action)
        record = TurnRecord(turn=self._t, seat=0, reward=0.0, valid_action=problem is None)
        obs = self._take(text, problem)
        if self._t == 1:
            found = any(c in VOWELS for c in text)
            a = self._answer
            hit = f"Found: the answer is {a}. {a} {a} {a} {a}" if found else "Nothing found."
            return self._continue(record, obs + hit + "\nAnswer:")
        outcome = self._outcome_so_far()
        return self._finish(record, outcome, obs + f"The answer was {self._answer}; score {outcome:.2f}.")


class FlakyVowelsEnv(_VowelTask):
    """``turngym/FlakyVowels-v0`` (study ``failures``): Vowels whose tool dies of injected errors.

    Rules: three turns of "type vowels"; the outcome is the mean vowel share of the replies. A reply
    containing ``e`` or ``E`` calls a flaky service; when the episode is scored (at the last step)
    and an earlier reply called it, the environment raises :class:`InjectedEnvError` with
    probability ``fail_rate`` (a hash of the episode salt and the replies, so deterministic). The
    error is infrastructure, not the policy's fault: ``e`` is a vowel and as good as any other.
    ``fail_rate`` is 0 by default (the registered env never fails); the study sets 0.5.

    Why it isolates failure handling: masking leaves failed rollouts out of every group statistic,
    so ``e`` is neither rewarded nor punished for the failures; scoring failures 0 punishes the
    replies that called the service, which teaches the policy to avoid ``e`` — to avoid
    infrastructure errors rather than to solve the task.
    """

    TRIGGER = "eE"

    def __init__(self, turns: int = 3, fail_rate: float = 0.0, render_mode: str | None = None):
        super().__init__(turns, render_mode)
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must lie in [0, 1], got {fail_rate!r}")
        self.fail_rate = float(fail_rate)


    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        text, problem = self._reply(action)
        if self._t + 1 >= self.turns and self._service_dies():
            self._over = True
            raise InjectedEnvError("injected infrastructure failure: the service behind 'e' died while scoring")
        record = TurnRecord(turn=self._t, seat=0, reward=0.0, valid_action=problem is None)
        obs = self._take(text, problem)
        return self._finish_or_continue(record, obs)

    def _service_dies(self) -> bool:
        called = any(c in self.TRIGGER for r in self._replies for c in r)
        return called and self.fail_rate > 0 and hashed_uniform(self._salt, *self._replies) < self.fail_rate


class InjectedEnvError(RuntimeError):
    """The failure :class:`FlakyVowelsEnv` injects (the rollout masks or, in the ablation, scores it)."""


class VowelDuelEnv(TurnGame):
    """``turngym/VowelDuel-v0`` (study ``role-baseline``): a one-move zero-sum game with a seat advantage.

    Rules: Player 0 types a reply, then Player 1 (who does not see it). Each seat's score is its
    reply's vowel share, and Player 0 gets a head start of ``first_mover_bonus`` (0.25). The higher
    score wins (+1, the other −1); a tie goes to Player 0. An empty reply forfeits (−1.5 / +0.5).
    Between two copies of one policy, Player 0 wins most games (about 3 in 4 for a random policy).

    Why it isolates role-conditioned baselines (SPIRAL RAE): in self-play the same policy plays
    both seats and the seat alone shifts the expected return. A baseline shared by the seats leaves
    that shift in every advantage (positive for Player 0, negative for Player 1); a per-seat baseline
    removes it. The skill (typing vowels) is the same for both seats.
    """

    system_prompt = "Type vowels only. The higher vowel share wins."
    action_format = "Reply with vowels, e.g. aeiou."
    provides_anchors = True

    def __init__(self, first_mover_bonus: float = 0.25, render_mode: str | None = None, **game_kwargs: Any):
        super().__init__(render_mode=render_mode, **game_kwargs)
        self.first_mover_bonus = float(first_mover_bonus)
        self._moves: list[str] = []

    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        self._moves = []

    def _to_move(self) -> int:
        return len(self._moves)

    def _is_over(self) -> bool:
        return len(self._moves) >= 2

    def _legal_moves(self) -> list[str]:
        return ["aeiou", "a"]

    def _legal_moves_text(self) -> str:
        return "any non-empty text, e.g. aeiou"

    def _parse_move(self, text: str) -> tuple[Any, str | None]:
        return (text, None) if text.strip() else (None, "the reply was empty")

    def _apply_move(self, move: Any) -> str:
        self._moves.append(str(move))
        return "typed a reply"

    def _returns(self) -> list[float]:
        score0 = char_share(self._moves[0], VOWELS) + self.first_mover_bonus
        score1 = char_share(self._moves[1], VOWELS)
        return [1.0, -1.0] if score0 >= score1 else [-1.0, 1.0]

    def _render(self, seat: int) -> str:
        head = f" (Player 0 has a head start of {self.first_mover_bonus:g})" if self.first_mover_bonus else ""
        return f"You are {self.seat_names[seat]}. Type vowels{head}."


__all__ = [
    "FlakyVowelsEnv",
    "InjectedEnvError",
    "KeyTurnEnv",
    "LookupEnv",
    "PingFarmEnv",
    "VowelDuelEnv",
    "char_share",
    "hashed_uniform",
]
