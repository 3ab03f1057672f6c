"""Unit tests of the model, tokenizer, sampling and stop strings (no server)."""

from __future__ import annotations

import pytest
import torch

from serving import tokenizer
from serving.model import SIZES, build_model, flops_per_token, kv_bytes_per_token
from serving.sampling import allowed_mask, new_generator, sample
from serving.stops import StopMatcher


def expected_params(name: str) -> int:
    s = SIZES[name]
    per_layer = 4 * s.d_model**2 + 3 * s.d_model * s.mlp_hidden  # qkv+proj, gate+up+down
    return 2 * tokenizer.VOCAB_SIZE * s.d_model + s.n_layers * per_layer


@pytest.mark.parametrize("name, low, high", [("tiny", 0.7e6, 1.3e6), ("small", 8e6, 13e6), ("base", 40e6, 60e6)])
def test_named_sizes_have_their_advertised_parameter_counts(name, low, high):
    model = build_model(name, max_len=64)
    assert model.param_count() == expected_params(name)
    assert low <= model.param_count() <= high


def test_cost_accounting():
    model = build_model("tiny", max_len=64)
    s = model.size
    embed = tokenizer.VOCAB_SIZE * s.d_model
    assert flops_per_token(model) == 2 * (model.param_count() - embed)
    assert flops_per_token(model, context_len=100) - flops_per_token(model) == 4 * s.n_layers * s.d_model * 100
    assert kv_bytes_per_token(model) == 2 * s.n_layers * s.d_model * 4
    assert kv_bytes_per_token(build_model("tiny", max_len=64, precision="bf16")) == 2 * s.n_layers * s.d_model * 2


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (build_model("tiny", 32, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


@torch.inference_mode()
def test_kv_cache_decode_matches_a_full_forward_pass():
    model = build_model("tiny", max_len=64, seed=3)
    tokens = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(0))
    full = model(tokens)
    cache = model.new_cache()
    parts = [model(tokens[:, :10], cache, 0)]  # prefill
    parts.append(model(tokens[:, 10:16], cache, 10))  # a chunk after cached positions
    parts += [model(tokens[:, p:p + 1], cache, p) for p in range(16, 24)]  # one token a step
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_rows_of_a_batch_are_independent():
    model = build_model("tiny", max_len=32, seed=4)
    tokens = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    both = model(tokens, model.new_cache(batch=2), 0)
    for row in range(2):
        alone = model(tokens[row:row + 1], model.new_cache(batch=1), 0)
        assert torch.allclose(both[row:row + 1], alone, atol=1e-5)


@torch.inference_mode()
def test_positions_past_the_context_are_refused():
    model = build_model("tiny", max_len=16)
    with pytest.raises(ValueError, match="exceed"):
        model(torch.zeros(1, 17, dtype=torch.long))


@torch.inference_mode()
def test_bf16_runs_on_cpu():
    model = build_model("tiny", max_len=16, precision="bf16")
    logits = model(torch.zeros(1, 4, dtype=torch.long), model.new_cache(), 0)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "huge"}, "unknown model size"),
    ({"precision": "fp16"}, "fp16 needs device cuda"),
    ({"precision": "int8", "device": "cuda"}, "int8 is cpu-only"),
    ({"precision": "fp8"}, "unknown precision"),
])
def test_unsupported_setups_raise_clear_value_errors(kwargs, message):
    args = {"name": "tiny", "max_len": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        build_model("tiny", max_len=16, device="cuda")


def test_tokenizer_is_bytes_plus_two_specials():
    assert tokenizer.encode("hé") == [104, 0xC3, 0xA9]
    assert tokenizer.decode([104, 0xC3, 0xA9, tokenizer.EOS]) == "hé"
    assert tokenizer.decode_one(ord("a")) == "a" and tokenizer.decode_one(tokenizer.EOS) == ""
    tokenizer.check_ids([0, 255, tokenizer.BOS, tokenizer.EOS])
    for bad in (-1, tokenizer.VOCAB_SIZE):
        with pytest.raises(ValueError, match=str(bad)):
            tokenizer.check_ids([1, bad])


def test_sampling_only_yields_printable_ascii_or_eos():
    banned = ~allowed_mask()
    logits = torch.zeros(tokenizer.VOCAB_SIZE)
    logits[0] = logits[200] = logits[tokenizer.BOS] = 50.0  # the model "prefers" forbidden ids
    rng = new_generator(0)
    seen = {sample(logits, banned, 1.0, 1.0, rng, allow_eos=True) for _ in range(300)}
    assert seen <= set(range(32, 127)) | {tokenizer.EOS} and len(seen) > 20
    assert sample(logits, banned, 0.0, 1.0, rng, allow_eos=True) in range(32, 127)


def test_eos_is_masked_unless_allowed_and_greedy_takes_the_best():
    banned = ~allowed_mask()
    logits = torch.zeros(tokenizer.VOCAB_SIZE)
    logits[tokenizer.EOS], logits[ord("q")] = 10.0, 5.0
    rng = new_generator(0)
    assert sample(logits, banned, 0.0, 1.0, rng, allow_eos=True) == tokenizer.EOS
    assert sample(logits, banned, 0.0, 1.0, rng, allow_eos=False) == ord("q")
    # A tiny nucleus keeps only the most likely token, even when sampling.
    assert {sample(logits, banned, 1.0, 0.01, rng, allow_eos=False) for _ in range(20)} == {ord("q")}


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(tokenizer.VOCAB_SIZE, generator=torch.Generator().manual_seed(5))
    banned = ~allowed_mask()

    def draws(seed: int) -> list[int]:
        rng = new_generator(seed)
        return [sample(logits, banned, 1.0, 0.9, rng, True) for _ in range(30)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


@pytest.mark.parametrize("stops, pieces, emitted, stopped", [
    ((), ["a", "b"], "ab", False),
    (("cd",), ["a", "b", "c", "d", "e"], "ab", True),
    (("cd",), ["a", "c", "x", "y"], "acxy", False),
    (("xyz", "y"), ["a", "x", "y"], "ax", True),
    (("aab",), ["a", "a", "a", "b"], "a", True),
])
def test_stop_strings_are_cut_and_never_streamed(stops, pieces, emitted, stopped):
    matcher = StopMatcher(stops)
    out, hit = "", False
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out += text
        if hit:
            break
    if not hit:
        out += matcher.flush()
    assert (out, hit) == (emitted, stopped)


def test_config_lists_exactly_the_model_sizes_the_server_builds():
    from servelab.config import MODEL_SIZES
    from serving.model import SIZES

    assert tuple(SIZES) == MODEL_SIZES
