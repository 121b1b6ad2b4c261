"""The vLLM backend's tests run where vLLM imports: a CUDA machine with the ``[vllm]`` extra, or the
CPU venv that ``.ci/vllm-venv`` makes (``tests/agents/test_vllm_backend.py`` runs this folder
there from the main suite). Elsewhere the folder is not collected."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def engine():
    """One VLLMPolicy on the embedded SmolLM2 (float32 on CPU, like HFPolicy), shared by the tests."""
    from turngym.agents.factory import load_policy

    return load_policy("vllm:smollm2-135m", engine={"max_model_len": 1024, "kv_cache_gib": 1.0})


@pytest.fixture(scope="session")
def hf():
    """The same model under HFPolicy: the reference the engine must agree with."""
    from turngym.agents.factory import load_policy

    return load_policy("smollm2-135m")
