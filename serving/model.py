"""The model: a small decoder-only transformer with a preallocated KV cache, and its costs.

Random weights from a seed: serving latency and cost depend on shapes, not on values.
Architecture in the nanochat mould: RMSNorm (no learnable scale), rotary position
embeddings, multi-head attention through F.scaled_dot_product_attention, a SwiGLU MLP,
untied input and output embeddings. Every tensor carries a batch dimension; at decode each
row may sit at its own position (`start_pos` a [B] tensor), which is what lets the engine
batch sequences of different lengths in one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from serving.tokenizer import VOCAB_SIZE


@dataclass(frozen=True)
class ModelSize:
    d_model: int
    n_layers: int
    n_heads: int

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        # SwiGLU with 8/3 d keeps the MLP at ~8 d^2 params like a 4 d GELU MLP; round up to 64.
        return -(-8 * self.d_model // 3 // 64) * 64


# Sized for a 2-core CPU: tiny ~1M, small ~10M, base ~50M parameters. Few, wide layers:
# at one token per step on a CPU, each layer costs ~0.3 ms of per-op overhead on top of
# streaming its weights from memory.
SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(d_model=128, n_layers=4, n_heads=4),
    "small": ModelSize(d_model=384, n_layers=6, n_heads=6),
    "base": ModelSize(d_model=640, n_layers=10, n_heads=10),
}

# int8 keeps fp32 activations, embeddings and KV cache: only the Linear weights are int8.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}


class KVCache:
    """Keys and values of every layer, preallocated: [layers, batch, heads, max_len, head_dim]."""

    def __init__(self, size: ModelSize, batch: int, max_len: int, dtype: torch.dtype, device: str):
        shape = (size.n_layers, batch, size.n_heads, max_len, size.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [B, H, T, D] at positions start..start+T; return all keys/values so far."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"sequence of {end} tokens exceeds the cache of {self.max_len}")
        b = k.shape[0]
        self.k[layer, :b, :, start:end] = k
        self.v[layer, :b, :, start:end] = v
        return self.k[layer, :b, :, :end], self.v[layer, :b, :, :end]

    def write_rows(self, layer: int, pos: torch.Tensor, end: int, k: torch.Tensor, v: torch.Tensor):
        """Store one token per row, row i at position pos[i]; return keys/values up to `end`.

        Rows past a row's own length hold stale keys (an earlier, longer occupant of the
        slot); the caller masks them out.
        """
        b = k.shape[0]
        rows = torch.arange(b, device=k.device)
        self.k[layer, rows, :, pos] = k[:, :, 0]
        self.v[layer, rows, :, pos] = v[:, :, 0]
        return self.k[layer, :b, :, :end], self.v[layer, :b, :, :end]

    def slot(self, row: int, rows: int = 1) -> KVCache:
        """A view of rows row..row+rows sharing this cache's storage: prefill into them."""
        view = object.__new__(KVCache)
        end = row + rows
        view.k, view.v, view.max_len = self.k[:, row:end], self.v[:, row:end], self.max_len
        return view

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` positions of row src into row dst (keeps live rows packed)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # Written out: on CPU, F.rms_norm costs ~70 us a call at decode shapes (dtype round
    # trips), this ~15 us; at one token per step that overhead rivals the matmuls.
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rotary_tables(head_dim: int, max_len: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # [T, D/2]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of the two halves of the head dim; x is [B, H, T, D]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    def __init__(self, size: ModelSize, layer: int):
        super().__init__()
        self.size, self.layer = size, layer
        self.qkv = nn.Linear(size.d_model, 3 * size.d_model, bias=False)
        self.proj = nn.Linear(size.d_model, size.d_model, bias=False)

    def forward(self, x, cos, sin, cache: KVCache | None, start, mask=None) -> torch.Tensor:
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.size.n_heads, self.size.head_dim).permute(2, 0, 3, 1, 4)
        # q and k rotated in one call: at decode, op count (not FLOPs) sets the step time.
        qk = apply_rotary(qkv[:2], cos, sin)
        q, k, v = qk[0], qk[1], qkv[2]
        if mask is not None:  # per-row positions: mask each row's keys beyond its own length
            assert cache is not None, "per-row positions always come with a cache"
            k, v = cache.write_rows(self.layer, start, mask.shape[-1], k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.proj(y.transpose(1, 2).reshape(b, t, -1))
        if cache is not None:
            k, v = cache.write(self.layer, start, k, v)
        if t == 1:  # one new token attends to everything before it: no mask needed
            y = F.scaled_dot_product_attention(q, k, v)
        elif start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # a chunk after cached positions: query i sees keys up to start + i
            keep = torch.ones(t, start + t, dtype=torch.bool, device=x.device).tril(diagonal=start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, size: ModelSize):
        super().__init__()
        self.gate_up = nn.Linear(size.d_model, 2 * size.mlp_hidden, bias=False)
        self.down = nn.Linear(size.mlp_hidden, size.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, size: ModelSize, layer: int):
        super().__init__()
        self.attn = Attention(size, layer)
        self.mlp = MLP(size)

    def forward(self, x, cos, sin, cache, start, mask=None) -> torch.Tensor:
        x = x + self.attn(rms_norm(x), cos, sin, cache, start, mask)
        return x + self.mlp(rms_norm(x))


class Transformer(nn.Module):
    cos: torch.Tensor  # rotary tables, registered as buffers (they follow .to(device))
    sin: torch.Tensor

    def __init__(self, size: ModelSize, max_len: int, vocab_size: int = VOCAB_SIZE):
        super().__init__()
        self.size, self.max_len = size, max_len
        self.embed = nn.Embedding(vocab_size, size.d_model)
        self.blocks = nn.ModuleList(Block(size, i) for i in range(size.n_layers))
        self.lm_head = nn.Linear(size.d_model, vocab_size, bias=False)
        cos, sin = rotary_tables(size.head_dim, max_len)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        # Counted now: int8 quantization turns Linear weights into packed non-parameters.
        self._n_params = sum(p.numel() for p in self.parameters())

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None, start_pos=0) -> torch.Tensor:
        """Logits [B, T, vocab] for tokens [B, T] at positions start_pos..start_pos+T.

        With a cache, keys/values of these positions are stored, and earlier ones (written
        by previous calls) are attended to. `start_pos` is an int shared by all rows, or a
        LongTensor [B] of per-row positions for one token per row (batched decode).
        """
        if torch.is_tensor(start_pos):
            return self._decode_rows(tokens, cache, start_pos)
        t = tokens.shape[1]
        if start_pos + t > self.max_len:
            raise ValueError(f"positions up to {start_pos + t} exceed the model's {self.max_len}")
        x = self.embed(tokens)
        cos = self.cos[start_pos:start_pos + t].to(x.dtype)
        sin = self.sin[start_pos:start_pos + t].to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin, cache, start_pos)
        return self.lm_head(rms_norm(x))

    def _decode_rows(self, tokens: torch.Tensor, cache: KVCache | None, pos: torch.Tensor) -> torch.Tensor:
        """One token per row, row i at position pos[i]: one forward pass for the whole batch."""
        b, t = tokens.shape
        if t != 1 or cache is None:
            raise ValueError("per-row positions take one token per row and a cache")
        end = int(pos.max()) + 1  # keys are read up to the longest row; the mask trims the rest
        if end > self.max_len:
            raise ValueError(f"positions up to {end} exceed the model's {self.max_len}")
        x = self.embed(tokens)
        cos = self.cos[pos].to(x.dtype).view(b, 1, 1, -1)  # broadcasts over [B, H, 1, D/2]
        sin = self.sin[pos].to(x.dtype).view(b, 1, 1, -1)
        keep = torch.arange(end, device=pos.device) <= pos[:, None]  # [B, end]: row's own keys
        mask = keep.view(b, 1, 1, end)
        for block in self.blocks:
            x = block(x, cos, sin, cache, pos, mask)
        return self.lm_head(rms_norm(x))

    def new_cache(self, batch: int = 1) -> KVCache:
        p = self.embed.weight  # never quantized, so it carries the activation dtype
        return KVCache(self.size, batch, self.max_len, p.dtype, str(p.device))

    def param_count(self) -> int:
        return self._n_params


def flops_per_token(model: Transformer, context_len: int = 0) -> int:
    """Forward FLOPs to produce one token: 2 per matmul weight, plus attention over the context.

    Formula: 2 * (params - embedding) + 4 * n_layers * d_model * context_len
    (the embedding is a lookup, not a matmul; QK^T and AV each cost 2 * d per cached position).
    """
    non_embedding = model.param_count() - model.embed.weight.numel()
    return 2 * non_embedding + 4 * model.size.n_layers * model.size.d_model * context_len


def kv_bytes_per_token(model: Transformer) -> int:
    """Formula: 2 (K and V) * n_layers * d_model * bytes per element."""
    return 2 * model.size.n_layers * model.size.d_model * model.embed.weight.element_size()


def check_precision(precision: str, device: str) -> None:
    """ValueError, one line, for a precision this device cannot run."""
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPES)}")
    if precision == "fp16" and device != "cuda":
        # CPU fp16 matmuls are emulated (slower than fp32): refuse rather than mislead.
        raise ValueError("precision fp16 needs device cuda; on cpu use bf16 or int8")
    if precision == "int8" and device != "cpu":
        raise ValueError("precision int8 is cpu-only in the reference server (dynamic quantization); "
                         "on cuda use bf16 or fp16")


def build_model(name: str, max_len: int, device: str = "cpu", precision: str = "fp32", seed: int = 0) -> Transformer:
    """A model of a named size with seeded random weights; ValueError for what is unsupported."""
    if name not in SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {', '.join(SIZES)}")
    check_precision(precision, device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but no CUDA device is available")
    torch.manual_seed(seed)
    model = Transformer(SIZES[name], max_len)
    for p in model.parameters():
        nn.init.normal_(p, std=0.02)
    model = model.to(device=device, dtype=DTYPES[precision]).eval().requires_grad_(False)
    return quantize_int8(model) if precision == "int8" else model


def quantize_int8(model: Transformer) -> Transformer:
    """Dynamic int8 quantization of every Linear (weights int8 per tensor, activations
    quantized per call): decode on CPU streams weights from memory, and int8 weights are
    a quarter of fp32. torch.ao.quantization is marked deprecated in favour of torchao,
    which is not installed here; it still works in torch 2.13, so its warnings are muted."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
