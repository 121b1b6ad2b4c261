"""Seat-based turn games (:class:`TurnGame`) and their single-agent view (:class:`VsOpponent`).

A :class:`TurnGame` is a :class:`~turngym.envs.core.TurnEnv` played by ``num_seats`` seats in turn
("hot seat"): ``step(action)`` applies ``action`` for :attr:`current_seat` and returns the observation
for the seat that acts next. Contract, on top of ``TurnEnv``'s:

* **Whose turn is explicit.** :attr:`current_seat` names the seat to act; ``info["seat"]`` repeats it
  after every ``reset``/``step``; ``info["turn"].seat`` is the seat that just acted.
* **Per-seat rewards.** ``info["seat_rewards"]`` maps every seat to the reward this step produced for
  it (the actor's equals ``reward``). They also accumulate per seat and are delivered, PettingZoo-AEC
  style, by :meth:`TurnGame.last` — so a seat that did not act never loses a reward (the loser of a
  game learns its outcome at its next look).
* **Zero-sum outcomes.** On the final step ``info["outcomes"]`` maps each seat to its outcome
  (+1 win, −1 loss, 0 draw, or chip counts for poker). Truncation (turn limit) is a draw: all 0.
* **Dense reward** (off by default): ``valid_move_reward=r`` adds a ``valid_move`` component ``r`` to
  every legal move — a format-shaping signal for learners starting from a model that rarely emits
  a legal move.
* **Invalid moves** (SPIRAL's rule by default): a malformed or illegal move ends the game with the
  offender at ``invalid_move_penalty`` (−1.5) and the others at ``invalid_move_bonus`` (+0.5),
  ``stop_reason="invalid_action"``. With ``error_allowance=k`` the first ``k`` invalid moves of a seat
  instead get a corrective observation and the same seat moves again.
* **Observations are pure.** :meth:`observe` (seat) renders the public moves since that seat last
  acted plus the seat's current view; calling it never changes the game.
* **Anchor states.** While the game runs, ``info["anchor"]`` (after ``reset`` and every ``step``) is
  :meth:`TurnGame.anchor_state` of the seat to act: its current view (board, own cards, bets) without
  the move history. Equal anchors are the same decision point as that seat knows it; GiGPO groups
  turns by them (``provides_anchors = True``).

Subclasses implement the rules hooks ``_new_game``, ``_to_move``, ``_is_over``, ``_legal_moves``,
``_parse_move``, ``_apply_move``, ``_returns`` and ``_render``; see
:class:`turngym.envs.games.base.OpenSpielGame` for the OpenSpiel-backed implementation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from turngym.envs.core import EpisodeOver, TurnEnv, action_text
from turngym.envs.types import StopReason, TurnRecord


class TurnGame(TurnEnv):
    """Base class of seat-based, zero-sum, turn-taking text games (contract in the module docstring)."""

    num_seats: int = 2
    seat_names: tuple[str, ...] = ("Player 0", "Player 1")
    provides_anchors: bool = True
    """``info["anchor"]`` holds the acting seat's state (see the module docstring)."""

    def __init__(
        self,
        *,
        invalid_move_penalty: float = -1.5,
        invalid_move_bonus: float = 0.5,
        error_allowance: int = 0,
        valid_move_reward: float = 0.0,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if error_allowance < 0:
            raise ValueError(f"error_allowance must be >= 0, got {error_allowance!r}")
        self.invalid_move_penalty = float(invalid_move_penalty)
        self.invalid_move_bonus = float(invalid_move_bonus)
        self.error_allowance = int(error_allowance)
        self.valid_move_reward = float(valid_move_reward)
        self._started = False
        self._done = False

    # ---------------------------------------------------------------- rules hooks (subclasses)
    def _new_game(self, rng: np.random.Generator, options: dict[str, Any] | None) -> None:
        """Set up a fresh game; draw every random choice (deals, dice) from ``rng``."""
        raise NotImplementedError

    def _to_move(self) -> int:
        """The seat to act in a non-terminal state."""
        raise NotImplementedError

    def _is_over(self) -> bool:
        raise NotImplementedError

    def _legal_moves(self) -> list[str]:
        """Canonical text of every legal move of the seat to act, in a fixed order."""
        raise NotImplementedError

    def _parse_move(self, text: str) -> tuple[Any, str | None]:
        """Parse a reply into a legal move: ``(move, None)`` or ``(None, what was wrong)``."""
        raise NotImplementedError

    def _apply_move(self, move: Any) -> str:
        """Apply a legal move for the seat to act; return its public description ("X played 5")."""
        raise NotImplementedError

    def _returns(self) -> list[float]:
        """Each seat's outcome in a terminal state."""
        raise NotImplementedError

    def _render(self, seat: int) -> str:
        """What ``seat`` sees now: board, own cards, legal moves if it is to act."""
        raise NotImplementedError

    def _legal_moves_text(self) -> str:
        """The legal moves as an invalid-move message lists them; override to summarise long lists."""
        return ", ".join(self._legal_moves())

    # ---------------------------------------------------------------- Gymnasium API
    @property
    def current_seat(self) -> int:
        self._require_started()
        return -1 if self._done else self._to_move()

    @property
    def done(self) -> bool:
        return self._done

    @property
    def outcomes(self) -> dict[int, float] | None:
        """Each seat's outcome once the game is over, else ``None``."""
        return None if self._outcomes is None else dict(self._outcomes)

    def anchor_state(self, seat: int) -> str:
        """``seat``'s current view without the move history: its anchor state (GiGPO). Pure."""
        self._require_started()
        return self._render(seat)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._started = True
        self._done = False
        self._turn = 0
        self._outcomes: dict[int, float] | None = None
        self._stop_reason: StopReason | None = None
        self._pending = [0.0] * self.num_seats
        self._invalid_counts = [0] * self.num_seats
        self._events: list[tuple[int, str]] = []
        self._seen_upto = [0] * self.num_seats
        self._new_game(self.np_random, options)
        seat = self._to_move()
        info = {
            "system_prompt": self.system_prompt,
            "seat": seat,
            "legal_actions": self._legal_moves(),
            "anchor": self.anchor_state(seat),
        }
        return self.observe(seat), info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._require_started()
        if self._done:
            raise EpisodeOver("the game is over; call reset() to start a new one")
        seat = self._to_move()
        self._pending[seat] = 0.0
        text, problem = action_text(action)
        move = None
        if problem is None:
            move, problem = self._parse_move(text)
        if problem is not None:
            return self._invalid(seat, problem)

        description = self._apply_move(move)
        self._events.append((seat, description))
        self._seen_upto[seat] = len(self._events)
        record = TurnRecord(turn=self._turn, seat=seat, reward=0.0)
        if self.valid_move_reward:
            record.components["valid_move"] = self.valid_move_reward
        seat_rewards = {s: 0.0 for s in range(self.num_seats)}
        if self._is_over():
            outcomes = {s: float(r) for s, r in enumerate(self._returns())}
            self._finish(outcomes, StopReason.GAME_OVER, credit=False)
            seat_rewards = dict(outcomes)
            record.outcome = outcomes[seat]
            record.terminated = True
            record.stop_reason = StopReason.GAME_OVER
        record.reward = record.turn_reward + (record.outcome or 0.0)
        seat_rewards[seat] = record.reward
        return self._step_return(record, seat_rewards)

    def stop(self, reason: StopReason) -> dict[int, float]:
        """End the game from outside: a draw (every seat 0) unless the game is already over."""
        self._require_started()
        if self._done:
            raise EpisodeOver("the game is already over")
        outcomes = {s: 0.0 for s in range(self.num_seats)}
        self._finish(outcomes, reason)
        return outcomes

    def last(self, seat: int) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """PettingZoo-style: ``seat``'s observation and the reward accumulated since it last acted."""
        self._require_started()
        terminated = self._done and self._stop_reason in (StopReason.GAME_OVER, StopReason.INVALID_ACTION)
        truncated = self._done and not terminated
        return self.observe(seat), self._pending[seat], terminated, truncated, {"seat": self.current_seat}

    def observe(self, seat: int) -> str:
        """Public moves by others since ``seat`` last acted, then ``seat``'s current view. Pure."""
        self._require_started()
        lines = [
            f"{self.seat_names[s]}: {desc}"
            for s, desc in self._events[self._seen_upto[seat] :]
            if s != seat
        ]
        parts = ["\n".join(lines)] if lines else []
        parts.append(self._render(seat))
        if self._done:
            parts.append(self._result_text(seat))
        return "\n\n".join(parts)

    def fork(self) -> TurnGame:
        return copy.deepcopy(self)

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        if not self._started or self._done:
            return None
        moves = self._legal_moves()
        return moves[int(rng.integers(len(moves)))] if moves else None

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        seat = 0 if self._done else self._to_move()
        return self._render(seat)

    # ---------------------------------------------------------------- internals
    def _invalid(self, seat: int, problem: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._invalid_counts[seat] += 1
        record = TurnRecord(turn=self._turn, seat=seat, reward=0.0, valid_action=False)
        legal = self._legal_moves_text()
        hint = f"Invalid move: {problem}. {self.action_format} Legal moves: {legal}."
        if self._invalid_counts[seat] <= self.error_allowance:
            self._turn += 1
            left = self.error_allowance - self._invalid_counts[seat]
            obs = f"{hint}\nTry again ({left} more invalid move(s) allowed).\n\n{self._render(seat)}"
            info = self._info(record, {s: 0.0 for s in range(self.num_seats)})
            return obs, 0.0, False, False, info
        outcomes = {s: self.invalid_move_bonus for s in range(self.num_seats)}
        outcomes[seat] = self.invalid_move_penalty
        self._events.append((seat, f"made an invalid move ({problem}) and forfeits"))
        self._finish(outcomes, StopReason.INVALID_ACTION, credit=False)
        record.outcome = record.reward = outcomes[seat]
        record.terminated = True
        record.stop_reason = StopReason.INVALID_ACTION
        obs, reward, terminated, truncated, info = self._step_return(record, outcomes)
        return f"{hint}\n\n{obs}", reward, terminated, truncated, info

    def _finish(self, outcomes: dict[int, float], reason: StopReason, credit: bool = True) -> None:
        """Mark the game over; ``credit`` adds the outcomes to the pending rewards (``stop`` path)."""
        self._done = True
        self._outcomes = dict(outcomes)
        self._stop_reason = reason
        if credit:
            for s, r in outcomes.items():
                self._pending[s] += r

    def _step_return(
        self, record: TurnRecord, seat_rewards: dict[int, float]
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._turn += 1
        for s, r in seat_rewards.items():
            self._pending[s] += r
        next_seat = record.seat if self._done else self._to_move()
        return (
            self.observe(next_seat),
            record.reward,
            record.terminated,
            record.truncated,
            self._info(record, seat_rewards),
        )

    def _info(self, record: TurnRecord, seat_rewards: dict[int, float]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "turn": record,
            "seat": -1 if self._done else self._to_move(),
            "seat_rewards": dict(seat_rewards),
            "legal_actions": [] if self._done else self._legal_moves(),
        }
        if self._done:
            info["outcomes"] = dict(self._outcomes or {})
        else:
            info["anchor"] = self.anchor_state(info["seat"])
        return info

    def _result_text(self, seat: int) -> str:
        outcome = (self._outcomes or {}).get(seat, 0.0)
        others = [r for s, r in (self._outcomes or {}).items() if s != seat]
        verdict = "draw" if all(outcome == r for r in others) else ("you won" if outcome > max(others) else "you lost")
        return f"Game over ({self._stop_reason}): {verdict}; your reward {outcome:+g}."

    def _require_started(self) -> None:
        if not self._started:
            from gymnasium.error import ResetNeeded

            raise ResetNeeded("Cannot call step()/observe() before reset()")


class Opponent(Protocol):
    """Anything that picks the move of ``game.current_seat`` given the (privileged) game object."""

    def __call__(self, game: TurnGame) -> str: ...


class VsOpponent(TurnEnv):
    """Single-agent Gymnasium view of a :class:`TurnGame`: the agent plays one seat, ``opponent`` the rest.

    The agent's seat is ``agent_seat`` if given, else ``seed % num_seats`` (so a GRPO group shares its
    seat and a run of seeds alternates seats). Opponent moves happen inside ``reset``/``step``; their
    public descriptions open the agent's next observation. An opponent with a ``reset(seed)`` method
    is reseeded at every seeded ``reset``, so an episode is a function of the seed and the agent's
    actions. ``reward`` is the agent's: its own move's
    components plus its outcome when the game ends, on whoever's move it ends.
    ``info["game_seat"]`` is the agent's seat in the game; ``info["anchor"]`` (while the game runs)
    the agent seat's :meth:`TurnGame.anchor_state`.
    """

    provides_anchors: bool = True

    def __init__(self, game: TurnGame, opponent: Opponent | Callable[[TurnGame], str], agent_seat: int | None = None):
        super().__init__(render_mode=game.render_mode)
        if agent_seat is not None and not 0 <= agent_seat < game.num_seats:
            raise ValueError(f"agent_seat must be in [0, {game.num_seats}), got {agent_seat!r}")
        self.game = game
        self.opponent = opponent
        self.fixed_seat = agent_seat
        self.agent_seat = 0 if agent_seat is None else agent_seat
        self.system_prompt = game.system_prompt
        self.action_format = game.action_format
        self.spec = game.spec

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.game.reset(seed=seed, options=options)
        reset_opponent = getattr(self.opponent, "reset", None)
        if callable(reset_opponent) and seed is not None:
            reset_opponent(seed)  # same seed ⇒ same opponent dice ⇒ same episode for the same actions
        if self.fixed_seat is not None:
            self.agent_seat = self.fixed_seat
        elif seed is not None:
            self.agent_seat = seed % self.game.num_seats
        else:
            self.agent_seat = int(self.np_random.integers(self.game.num_seats))
        self._turn = 0
        self._opponents_move()
        info = {
            "system_prompt": self.system_prompt,
            "seat": 0,
            "game_seat": self.agent_seat,
            "legal_actions": [] if self.game.done else self.game._legal_moves(),
        }
        if not self.game.done:
            info["anchor"] = self.game.anchor_state(self.agent_seat)
        return self.game.observe(self.agent_seat), info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.game.done:
            raise EpisodeOver("the game is over; call reset() to start a new one")
        game_obs, _, _, _, info = self.game.step(action)
        own: TurnRecord = info["turn"]
        if not self.game.done:
            self._opponents_move()
        record = TurnRecord(
            turn=self._turn,
            seat=self.agent_seat,
            reward=0.0,
            components=dict(own.components),
            valid_action=own.valid_action,
        )
        self._turn += 1
        if self.game.done:
            outcomes = self.game.outcomes or {}
            record.outcome = outcomes[self.agent_seat]
            record.stop_reason = self.game._stop_reason
            record.terminated = record.stop_reason in (StopReason.GAME_OVER, StopReason.INVALID_ACTION)
            record.truncated = not record.terminated
        record.reward = record.turn_reward + (record.outcome or 0.0)
        out_info: dict[str, Any] = {
            "turn": record,
            "seat": 0,
            "game_seat": self.agent_seat,
            "legal_actions": [] if self.game.done else self.game._legal_moves(),
        }
        if self.game.done:
            out_info["outcomes"] = dict(self.game.outcomes or {})
        else:
            out_info["anchor"] = self.game.anchor_state(self.agent_seat)
        # An invalid move's explanation (what was wrong, the expected format) is in the game's reply
        # to the agent's own seat; a valid move's consequences are in the agent's fresh observation.
        obs = game_obs if not own.valid_action else self.game.observe(self.agent_seat)
        return obs, record.reward, record.terminated, record.truncated, out_info

    def stop(self, reason: StopReason) -> dict[int, float]:
        outcomes = self.game.stop(reason)
        return {self.agent_seat: outcomes[self.agent_seat]}

    def fork(self) -> VsOpponent:
        return copy.deepcopy(self)

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        return self.game.sample_valid_action(rng)

    def render(self) -> str | None:
        return self.game.render()

    def _opponents_move(self) -> None:
        while not self.game.done and self.game.current_seat != self.agent_seat:
            self.game.step(self.opponent(self.game))
