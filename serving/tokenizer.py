"""Byte-level tokenizer: ids 0-255 are bytes, 256 is BOS, 257 is EOS.

No merges on purpose: every prompt's token count is its UTF-8 length, so a load generator
can predict it exactly, and each generated (printable ASCII) token is one character.
"""

from __future__ import annotations

BOS = 256
EOS = 257
VOCAB_SIZE = 258
# Sampling is restricted to these so that one token is exactly one character on the wire.
PRINTABLE = range(32, 127)


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(ids: list[int]) -> str:
    """Bytes back to text; special ids are dropped, broken UTF-8 is replaced."""
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def decode_one(token: int) -> str:
    return "" if token >= 256 else chr(token) if token < 128 else decode([token])


def check_ids(ids: list[int]) -> None:
    """Raise ValueError naming the first id outside the vocabulary."""
    for i, t in enumerate(ids):
        if not 0 <= t < VOCAB_SIZE:
            raise ValueError(f"prompt token id {t} at index {i} is outside the vocabulary [0, {VOCAB_SIZE})")
