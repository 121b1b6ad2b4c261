"""A character-level tokenizer and tiny random Llama — a complete, offline model for tests and CI.

``tiny_char_model(seed)`` returns ``(model, tokenizer)``: every printable ASCII character is one token,
ChatML special tokens (``<|im_start|>``, ``<|im_end|>``) are single tokens, and the tokenizer carries a
ChatML chat template, so the model plugs into every model-facing path (HFPolicy, rollouts, the
trainer) exactly as a real chat model does, with a ~100-token vocabulary that a learner can move in
a few CPU minutes.
"""

from __future__ import annotations

from typing import Any

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")


def char_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` with one token per printable ASCII character (plus newline)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {tok: i for i, tok in enumerate(list(SPECIALS) + chars)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIALS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        bos_token=None,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_char_model(seed: int = 0, *, num_layers: int = 2, hidden_size: int = 64) -> tuple[Any, Any]:
    """A random ``num_layers`` × ``hidden_size`` Llama over :func:`char_tokenizer`; same seed ⇒ same weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer
