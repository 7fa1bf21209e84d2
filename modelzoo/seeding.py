"""Every random choice in modelzoo flows from a run's seed through these functions.

A model's initialisation, data order and dropout masks are derived from its own seed with a named
purpose, never from global RNG state, so that a model trains identically whether it runs alone, in a
vectorised group of any size, on any worker, or in any order (invariant 1 of the design).

Dropout masks come from a counter-based hash rather than a stateful generator: the mask of model
``m`` at optimisation step ``t`` in dropout layer ``l`` is a pure function of ``(seed_m, t, l,
element index)``. That lets the vectorised engine draw the masks of hundreds of models in one tensor
operation and still match the per-model reference trainer exactly.
"""

from __future__ import annotations

import hashlib

import torch

_MASK32 = 0xFFFFFFFF
_MIX = (
    0x45D9F3B  # odd multiplier of a well-known 32-bit integer hash; < 2**27 so products fit int64
)


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose of one run; stable across platforms and Python versions."""
    digest = hashlib.blake2b(f"{int(seed)}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded for ``purpose`` of the run with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, purpose))
    return gen


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order in which a run visits its ``n`` training examples in ``epoch`` (1-based)."""
    return torch.randperm(n, generator=generator(seed, f"data-order:{epoch}"))


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = ((x >> 16) ^ x) * _MIX & _MASK32
    x = ((x >> 16) ^ x) * _MIX & _MASK32
    return (x >> 16) ^ x


def dropout_keys(seeds: torch.Tensor) -> torch.Tensor:
    """Per-model 32-bit keys for the dropout hash, from 63-bit run-derived seeds (int64 tensor)."""
    low = seeds & _MASK32
    high = (seeds >> 32) & _MASK32
    return _mix32(low ^ _mix32(high))


def hashed_uniform(
    keys: torch.Tensor, step: int, layer: int, shape: tuple[int, ...]
) -> torch.Tensor:
    """Uniform [0, 1) numbers of ``shape`` for each model key, a pure function of (key, step, layer).

    ``keys`` is an int64 tensor of shape [M]; the result has shape [M, *shape] on the keys' device.
    """
    count = 1
    for size in shape:
        count *= size
    salt = _mix32(
        torch.tensor((step * 0x9E3779B1 + layer * 0x85EBCA77) & _MASK32, device=keys.device)
    )
    base = _mix32(keys ^ salt).unsqueeze(1)  # [M, 1]
    index = torch.arange(count, device=keys.device, dtype=torch.int64).unsqueeze(0)
    bits = _mix32((base + index * 0x27D4EB2F) & _MASK32)
    # 24 high-quality bits -> exactly representable float32 in [0, 1)
    return ((bits >> 8).to(torch.float32) * (1.0 / (1 << 24))).reshape(keys.shape[0], *shape)
