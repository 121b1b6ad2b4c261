"""The environment contract: :class:`TurnEnv`, a Gymnasium environment whose observations and actions are text.

A ``TurnEnv`` is a plain :class:`gymnasium.Env` — ``gymnasium.make``, wrappers and ``check_env`` work
on it — with these additional promises, all checked by ``turngym check``:

* **Text in, text out.** ``observation`` is the new user-message text for the agent about to act;
  ``action`` is the agent's full reply. :attr:`system_prompt` is the fixed system message of the
  task; :attr:`action_format` is a one-line description of a well-formed action.
* **Turn records.** ``step`` returns the Gymnasium 5-tuple ``(obs, reward, terminated, truncated,
  info)``; ``info["turn"]`` is a :class:`~turngym.envs.types.TurnRecord` with the acting seat, the
  named reward components, the outcome on the final step and the stop reason.
  ``reward == sum(components) + (outcome or 0)``.
* **Determinism.** The same ``reset(seed=s)`` gives the same start byte for byte, and the same actions
  give the same episode, so every rollout of a GRPO group starts identically.
* **Bad input is data.** Empty, huge, non-UTF-8 (``bytes``) or malformed actions never raise: they get
  an observation that says what was wrong and what :attr:`action_format` expects, and the record has
  ``valid_action=False``.
* **The outcome is always computed.** :meth:`stop` ends the episode from outside (turn limit, token
  limit, too many invalid actions) and returns each seat's outcome from the current state.
* **Optional:** :meth:`fork` (an independent copy that continues identically), async twins
  :meth:`areset` / :meth:`astep` (override them for I/O-bound environments),
  :meth:`sample_valid_action` (a well-formed action, used by the checker and random baselines),
  :meth:`data_fingerprint` (hashes of the data the env plays on, for reproducibility manifests).

Info keys: ``reset`` returns ``{"system_prompt", "seat"}``; ``step`` returns ``{"turn", "seat"}``
where ``seat`` is the seat to act next. Environments may add keys (``legal_actions``, ``answer``…).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np

from turngym.envs.types import StopReason, TextSpace

MAX_ACTION_CHARS = 200_000
"""Actions longer than this are rejected as malformed before any parsing (they are never executed)."""


class EpisodeOver(RuntimeError):
    """``step`` was called after the episode ended; call ``reset()`` first."""


class ForkNotSupported(NotImplementedError):
    """The environment cannot copy its state."""


class TurnEnv(gymnasium.Env[str, str]):
    """Base class of every turngym environment (see the module docstring for the full contract).

    Set these in ALL subclasses: :meth:`reset` (call ``super().reset(seed=seed)`` first), :meth:`step`,
    :meth:`stop`, :attr:`system_prompt`, :attr:`action_format`.
    Set these in SOME subclasses: :meth:`fork`, :meth:`sample_valid_action`, :meth:`render`,
    :attr:`num_seats` (> 1 for games; see :class:`~turngym.envs.multiagent.TurnGame`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    observation_space: TextSpace = TextSpace()
    action_space: TextSpace = TextSpace()

    num_seats: int = 1
    system_prompt: str = ""
    action_format: str = ""

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; choose one of {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        # Instance-level spaces, so seeding one env's action space never touches another's.
        self.observation_space = TextSpace()
        self.action_space = TextSpace()

    @property
    def current_seat(self) -> int:
        """The seat whose action the next ``step`` applies (always 0 for single-agent envs)."""
        return 0

    def stop(self, reason: StopReason) -> dict[int, float]:
        """End the episode now from outside and return each seat's outcome from the current state.

        Called by wrappers when a turn, token or invalid-action budget runs out. After it, the episode
        is over (``step`` raises :class:`EpisodeOver`).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement stop(reason)")

    def fork(self) -> TurnEnv:
        """Return an independent copy of this environment that continues exactly as this one would."""
        raise ForkNotSupported(f"{type(self).__name__} cannot fork its state")

    def sample_valid_action(self, rng: np.random.Generator) -> str | None:
        """A well-formed action for the current state, drawn with ``rng``; ``None`` if unknown."""
        return None

    @classmethod
    def data_fingerprint(cls, **kwargs: Any) -> dict[str, str]:
        """Hashes of the data an env built with constructor ``kwargs`` (the spec's defaults merged
        with the caller's) plays on — question pools, corpora, generated problems, task sets, the
        sandbox image — as ``{name: hash}``, for the reproducibility manifest. ``{}`` (the default)
        for envs whose episodes are a function of their code alone. May build or load the data
        (it would be loaded to play anyway); must not start episodes or services."""
        return {}

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Async twin of :meth:`reset`. Override in I/O-bound environments."""
        return self.reset(seed=seed, options=options)

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Async twin of :meth:`step`. Override in I/O-bound environments."""
        return self.step(action)


def action_text(action: Any) -> tuple[str | None, str | None]:
    """Coerce a raw action into text.

    Returns ``(text, None)`` on success or ``(None, problem)`` where ``problem`` says what was wrong.
    ``bytes`` are decoded as UTF-8; undecodable bytes, non-strings and oversized actions are problems.
    """
    if isinstance(action, (bytes, bytearray)):
        try:
            action = bytes(action).decode("utf-8")
        except UnicodeDecodeError:
            return None, "your reply was not valid UTF-8 text"
    if not isinstance(action, str):
        return None, f"your reply must be text, got {type(action).__name__}"
    if len(action) > MAX_ACTION_CHARS:
        return None, f"your reply was {len(action):,} characters long (limit {MAX_ACTION_CHARS:,})"
    return action, None
