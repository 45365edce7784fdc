"""Stable seeds derived with SHA-256 from named parts.

Byte encoding (stable across Python versions, platforms and processes): every part
becomes a type tag and its bytes, ``tag || len(bytes) as 8-byte big-endian || bytes``,
and the parts are concatenated in order:

======  ===  ===================================================
type    tag  bytes
======  ===  ===================================================
int     b"i" decimal ASCII of the integer (``-3`` -> ``b"-3"``)
str     b"s" UTF-8
bytes   b"b" as given
======  ===  ===================================================

``bool`` and floats are refused (``True == 1`` and float formatting would make two
spellings of one seed). NumPy integers count as ``int``. The seed is the first
8 bytes of the digest, big-endian, with the top bit cleared: ``0 <= seed < 2**63``,
so it fits a signed int64 and seeds both torch and NumPy.
"""

from __future__ import annotations

import hashlib
import numbers

import numpy as np

INT63_MASK = (1 << 63) - 1


def encode_part(part: int | str | bytes) -> bytes:
    if isinstance(part, (bool, np.bool_)):
        raise TypeError("sha256_seed: bool parts are ambiguous with 0/1; pass an int")
    if isinstance(part, numbers.Integral):
        tag, payload = b"i", str(int(part)).encode("ascii")
    elif isinstance(part, str):
        tag, payload = b"s", part.encode("utf-8")
    elif isinstance(part, (bytes, bytearray)):
        tag, payload = b"b", bytes(part)
    else:
        raise TypeError(f"sha256_seed: parts must be int, str or bytes, got {type(part).__name__}")
    return tag + len(payload).to_bytes(8, "big") + payload


def sha256_seed(*parts: int | str | bytes) -> int:
    """A non-negative int64 seed from the SHA-256 of the encoded parts."""
    digest = hashlib.sha256(b"".join(encode_part(p) for p in parts)).digest()
    return int.from_bytes(digest[:8], "big") & INT63_MASK


def torch_generator(seed: int, device="cpu"):
    """A ``torch.Generator`` seeded with ``seed`` (torch imported here: NumPy-only jobs skip it)."""
    import torch

    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def numpy_generator(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed))
