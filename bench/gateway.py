"""The training gateway's overhead per call: gateway vs direct ``turngym serve``, same model and requests.

Run as a script::

    python bench/gateway.py --json out.json     # 120 paired calls per request shape
    python bench/gateway.py --quick             # 12 paired calls

or through ``turngym bench gateway`` / ``bench/run.py gateway``.

**Arms**, both in this process, each its own ``ServerThread`` over its own copy of the same model
(``tiny-char``, seed 0; one torch thread), KV reuse off in both (so a repeated request costs the
same every time): ``direct`` — plain ``turngym serve`` at ``/v1``; ``gateway`` — the same server
with a :class:`~turngym.agents.gateway.SessionRecorder` (per-session base URL ``/s/<session>/v1``,
each episode of 4 calls its own session, the reward reported after the 4th call in-process and the
record taken, as the trainer does). The client is the official ``openai`` SDK, one call at a time,
a new client per episode of 4 calls in both arms (as an agent program makes one per task).

**Request shapes**: ``chat`` — a 2-message chat, greedy, ``max_tokens`` 8; ``tools`` — the same with
one function tool (the tool instruction lengthens the prompt to ≈ 700 tokens); ``stream`` — ``chat``
with ``stream=True``. Calls alternate A B A B … (the arm order swapped every pair), so load on the
shared machine falls on both arms alike.

**Figures** per shape: median wall seconds per call of each arm, ``overhead_ms`` — the median of the
paired differences gateway − direct, and ``ratio`` — the median of the paired ratios. ``machine``:
load averages and CPU shares during the run (``bench/_machine.py``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from turngym.bench._machine import MachineProbe
from turngym.bench._script import script_main

CALC = {"type": "function", "function": {"name": "calculator", "description": "Evaluate an arithmetic expression.",
                                         "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}}
MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 17 * 3?"}]
SHAPES: dict[str, dict[str, Any]] = {
    "chat": {"messages": MESSAGES, "max_tokens": 8, "temperature": 0},
    "tools": {"messages": MESSAGES, "max_tokens": 8, "temperature": 0, "tools": [CALC]},
    "stream": {"messages": MESSAGES, "max_tokens": 8, "temperature": 0, "stream": True},
}


def run(quick: bool = False) -> dict[str, Any]:
    import openai
    import torch

    from turngym.agents.gateway import GatewayConfig, SessionRecorder
    from turngym.agents.hf_policy import HFPolicy
    from turngym.agents.serve import ServeConfig, ServerThread
    from turngym.agents.tiny import tiny_char_model

    torch.set_num_threads(1)
    pairs = 12 if quick else 120
    probe = MachineProbe()
    recorder = SessionRecorder(GatewayConfig(max_sessions=16))
    config = ServeConfig(model_name="tiny", kv_reuse=False, batch_wait_s=0.0)
    direct_policy, gateway_policy = (HFPolicy(*tiny_char_model(0)) for _ in range(2))
    with ServerThread(direct_policy, config) as direct, ServerThread(gateway_policy, config, recorder=recorder) as gateway:
        counter = {"direct": 0, "gateway": 0}
        clients: dict[str, Any] = {}

        def call(arm: str, request: dict[str, Any]) -> float:
            session = f"episode-{counter[arm] // 4}"
            if counter[arm] % 4 == 0:  # a new episode: a new client, as an agent program makes one per task
                url = direct.base_url if arm == "direct" else f"{gateway.root_url}/s/{session}/v1"
                clients[arm] = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
            client = clients[arm]
            start = time.perf_counter()
            reply = client.chat.completions.create(model="tiny", **request)
            if request.get("stream"):
                list(reply)
            seconds = time.perf_counter() - start
            counter[arm] += 1
            if arm == "gateway" and counter[arm] % 4 == 0:  # the episode ends: reward, take the record (the trainer's part)
                recorder.report(session, 1.0)
                recorder.take(session)
            return seconds

        shapes: dict[str, Any] = {}
        for name, request in SHAPES.items():
            for _ in range(4):  # warm-up (one episode per arm): first-call costs out of the figures
                for arm in ("direct", "gateway"):
                    call(arm, request)
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for i in range(pairs):
                for arm in (("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")):
                    times[arm].append(call(arm, request))
            diffs = [g - d for g, d in zip(times["gateway"], times["direct"])]
            ratios = [g / d for g, d in zip(times["gateway"], times["direct"])]
            shapes[name] = {
                "direct_s": round(statistics.median(times["direct"]), 5),
                "gateway_s": round(statistics.median(times["gateway"]), 5),
                "overhead_ms": round(1000 * statistics.median(diffs), 3),
                "ratio": round(statistics.median(ratios), 3),
                "pairs": pairs,
            }
    return {"model": "tiny-char", "shapes": shapes, "machine": probe.finish()}


def summary(result: dict[str, Any]) -> str:
    lines = [f"gateway vs direct serve ({result['model']}, load {result['machine']['loadavg_after'][0]}):"]
    for name, s in result["shapes"].items():
        lines.append(f"  {name:7s} direct {1000 * s['direct_s']:7.1f} ms  gateway {1000 * s['gateway_s']:7.1f} ms  "
                     f"overhead {s['overhead_ms']:+6.2f} ms/call  ratio {s['ratio']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return script_main(__doc__, run, summary, argv)


if __name__ == "__main__":
    raise SystemExit(main())
