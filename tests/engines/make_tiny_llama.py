"""Write a tiny Llama-architecture model with random weights and a locally trained tokenizer.

`python tests/engines/make_tiny_llama.py DIR` (with the engine environment's Python: it needs
torch, transformers and tokenizers) writes a Hugging Face model folder that vLLM and
`transformers serve` load offline: 2 layers, hidden size 64 in one head (vLLM's CPU attention
has no kernel for heads smaller than 32), a byte-level BPE tokenizer
trained on a few sentences (any text tokenizes), a plain chat template. Nothing is
downloaded. Its outputs are gibberish; what servelab measures is the serving, not the text.
"""

from __future__ import annotations

import sys
from pathlib import Path

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "servelab measures latency and cost of serving language models",
    "a request streams tokens back one chunk at a time",
    "prompts and outputs are counted in tokens",
] * 8
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")


def tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def main(out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(out)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.generation_config.max_length = 1024
    model.save_pretrained(out, safe_serialization=True)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".engines/tiny-llama"))
