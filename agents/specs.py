"""Agent specs on the command line → agents.

Accepted: the env's own agents (``TurnSpec.agents``: a search oracle, a household planner expert, the
games' scripted bots ``random``, ``minimax``, ``nash``… of :mod:`turngym.envs.games.bots`, valid per
game, with ``name:value`` for a bot's parameter, e.g. ``alphabeta:6``); ``random`` for any
single-agent environment (it plays ``env.sample_valid_action``); and, in games, any model spec of
:mod:`turngym.agents.factory` — ``smollm2-135m``, ``hf:<path>``, ``vllm:<path>``, ``tiny-char``… (e.g.
a trained run's ``hf:runs/quickstart/model``), optionally with ``@T`` for a sampling temperature
(``hf:runs/q/model@0.7``; greedy by default), and ``openai:<model>@<base_url>`` — any
OpenAI-compatible chat endpoint (``turngym serve``, vLLM, llama.cpp, a hosted API; key from
``OPENAI_API_KEY``). Model agents answer from the system prompt and the
current observation only, one reply per call; batched evaluation of a model uses ``turngym eval``.
"""

from __future__ import annotations

import importlib

import numpy as np

from turngym.agents.base import SamplingParams
from turngym.agents.factory import is_model_spec, load_policy, parse_spec, shared_policy
from turngym.agents.openai_policy import ChatAgent
from turngym.envs.core import TurnEnv
from turngym.envs.games.bots import make_agent
from turngym.envs.registration import spec as env_spec


class SampleValidAgent:
    """Plays ``env.sample_valid_action(rng)`` — a uniform-random baseline for any environment that can
    propose valid actions (every game, and single-agent tasks that implement the hook)."""

    name = "random"

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, env: TurnEnv) -> str:
        action = env.sample_valid_action(self.rng)
        if action is None:
            raise ValueError(
                f"{type(env).__name__} cannot propose valid actions (sample_valid_action returned None); "
                "the 'random' agent needs that hook"
            )
        return action


class ModelAgent:
    """A direct agent backed by a model policy: replies to the current seat's observation."""

    def __init__(self, policy, name: str, temperature: float = 0.0, max_new_tokens: int = 16, seed: int | None = None):
        self.policy, self.name = policy, name
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, env) -> str:
        observation = env.observe(env.current_seat)
        messages = ([{"role": "system", "content": env.system_prompt}] if env.system_prompt else []) + [
            {"role": "user", "content": observation}
        ]
        ids = self.policy.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=int(self.rng.integers(2**31))
        )
        return self.policy.generate([list(ids)], params)[0].text


def model_agent(agent_spec: str, seed: int | None = None) -> ModelAgent | ChatAgent:
    """A game agent backed by the model ``agent_spec`` names, greedy unless it ends in ``@T``.

    Local models share one copy of their weights per process, however many agents use them
    (:func:`turngym.agents.factory.shared_policy`); an endpoint is only a URL, so each agent has its own.
    """
    parsed = parse_spec(agent_spec)
    temperature = parsed.temperature or 0.0
    if parsed.kind == "openai":
        return ChatAgent(load_policy(parsed, chat_only=True), agent_spec, temperature, seed=seed)
    return ModelAgent(shared_policy(parsed), agent_spec, temperature, seed=seed)


def _load_entry_point(entry_point: str):
    module_name, _, attr = entry_point.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def resolve_agent(agent_spec: str, env_id: str, seed: int | None = None):
    """Build the agent named by ``agent_spec`` for ``env_id``; errors list the valid names."""
    turn_spec = env_spec(env_id)
    if agent_spec in turn_spec.agents:
        return _load_entry_point(turn_spec.agents[agent_spec])(seed=seed)
    if is_model_spec(agent_spec):
        if turn_spec.num_seats == 1:
            endpoint = parse_spec(agent_spec).kind == "openai"
            kind = "endpoint agents play games directly" if endpoint else "model agents play games"
            raise ValueError(f"{kind}; for {env_id!r} use `turngym eval --agent {agent_spec}`")
        return model_agent(agent_spec, seed)
    if turn_spec.num_seats == 1:
        if agent_spec == "random":
            return SampleValidAgent(seed)
        names = ", ".join(["random", *sorted(turn_spec.agents)])
        raise ValueError(f"unknown agent {agent_spec!r} for single-agent env {env_id!r}; available: {names}")
    return make_agent(agent_spec, env_id, seed=seed)  # a bot's ``name:value``, the generic bots, or the error
