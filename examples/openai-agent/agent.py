"""An arithmetic agent written with the plain ``openai`` SDK and a calculator tool — trained through
the turngym gateway without changing a line (``docs/gateway.md``).

``run(task, base_url, api_key)`` plays one task and returns its reward; ``tasks()`` is the task set.
Run it by hand against any OpenAI-compatible server::

    python examples/openai-agent/agent.py --base-url http://127.0.0.1:8000/v1

Reward (verifiable, in [0, 1]): 1 when the final reply is the right number; otherwise half the
share of digits among the reply's characters — a format signal a random model can climb (the
tiny CI model learns to answer in digits; it does not learn arithmetic or tool use).
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import os
import random
import sys

from openai import OpenAI

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression with integers, + - * and parentheses.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (3 + 4) * 2"}},
            "required": ["expression"],
        },
    },
}
SYSTEM = "Solve the arithmetic problem. You may call the calculator tool. Reply with the final answer as a number only."
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.USub: operator.neg}


def tasks(count: int = 256, seed: int = 0) -> list[dict]:
    """``count`` problems ``a op b`` with small integers; each ``{"question", "answer"}``."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b, op = rng.randint(0, 20), rng.randint(0, 20), rng.choice("+-*")
        out.append({"question": f"What is {a} {op} {b}?", "answer": str(eval(f"{a}{op}{b}"))})  # noqa: S307 - literals only
    return out


def calculate(expression: str) -> str:
    """The calculator tool: integer arithmetic only; an error message for anything else."""
    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise ValueError(f"unsupported expression {expression!r}")

    try:
        return str(value(ast.parse(expression, mode="eval").body))
    except (SyntaxError, ValueError) as exc:
        return f"error: {exc}"


def score(reply: str, answer: str) -> float:
    """1 for the right number; else half the share of digits in the (stripped) reply."""
    text = reply.strip()
    if text == answer:
        return 1.0
    return 0.5 * sum(c.isdigit() for c in text) / len(text) if text else 0.0


def run(task: dict, base_url: str, api_key: str, max_calls: int = 3) -> float:
    """Play one task: ask, execute any calculator calls, ask again; the reward of the final reply."""
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    messages: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task["question"]}]
    for _ in range(max_calls):
        reply = client.chat.completions.create(model="agent", messages=messages, tools=[CALCULATOR], max_tokens=48)
        message = reply.choices[0].message
        if not message.tool_calls:
            return score(message.content or "", task["answer"])
        messages.append({"role": "assistant", "content": message.content,
                         "tool_calls": [call.model_dump() for call in message.tool_calls]})
        for call in message.tool_calls:
            try:
                expression = json.loads(call.function.arguments).get("expression", "")
            except json.JSONDecodeError:
                expression = ""
            messages.append({"role": "tool", "tool_call_id": call.id, "content": calculate(str(expression))})
    return 0.0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    parser.add_argument("--stdin", action="store_true", help="read one task as JSON on stdin, print its reward")
    args = parser.parse_args()
    if args.stdin:  # the command-line program form of agent_program
        print(run(json.load(sys.stdin), args.base_url, args.api_key))
    else:
        for task in tasks(5):
            print(task["question"], run(task, args.base_url, args.api_key))
