"""The 2021 paper's weight augmentations (seed 001, Section 2) applied to a whole batch at once.

These are the augmentations of :mod:`modelzoo.augment` -- :class:`~modelzoo.augment.PermuteUnits`
(function-preserving reordering of hidden units, optionally from a fixed pool, 120 in the paper),
:class:`~modelzoo.augment.RandomErase` (one contiguous range set to 0 with probability p, its length
a uniform fraction of the vector, rounded the same way) and
:class:`~modelzoo.augment.GaussianNoise` -- in the same order and with the same parameters, on
torch tensors ``[B, P]``, in the space the autoencoder sees (after layer normalisation, as
ZooDataset does).

What differs is where the random numbers come from. ZooDataset builds one numpy generator per
sample (~250 us per sample and view on this machine), which would cost more than a training step
of the tetris autoencoder. Here every draw is a counter-based hash of (seed, sample, view, epoch,
purpose) (``modelzoo.seeding.hashed_uniform``, the function behind the zoo engine's dropout
masks): each sample's augmentation is still its own pure function of its coordinates,
independent of the batch it lands in, and a resumed run redraws exactly what it drew before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..seeding import derive_seed, dropout_keys, hashed_uniform
from ..tokens import WeightStructure

PERMUTE, ERASE, NOISE, PAPER_POOL_PICK = 0, 1, 2, 3


def sample_keys(seed: int, samples: torch.Tensor, view: int, purpose: str) -> torch.Tensor:
    """32-bit hash keys, one per sample (``samples``: int64 sample numbers)."""
    base = derive_seed(seed, purpose)
    return dropout_keys(torch.as_tensor(base, dtype=torch.int64) ^ (samples * 2 + view))


def permutation_pool(structure: WeightStructure, size: int, seed: int, purpose: str) -> np.ndarray:
    """``[size, P]`` source positions of ``size`` fixed random permutations (the paper's pool)."""
    rng = np.random.default_rng(derive_seed(seed, purpose))
    return structure.permutation_index(structure.random_permutations(rng, size))


class BatchAugmenter:
    """Augments ``[B, P]`` batches; each row's draws depend only on (seed, sample, view, epoch)."""

    def __init__(self, structure: WeightStructure, augment: dict[str, Any], seed: int) -> None:
        self.structure, self.seed = structure, seed
        self.permute, self.erase, self.noise = (
            augment["permute"],
            augment["erase"],
            augment["noise"],
        )
        self.scale = augment["erase_scale"]
        pool = augment["permutations"]
        self.pool = None
        if self.permute and pool is not None:
            self.pool = torch.from_numpy(permutation_pool(structure, pool, seed, "ae-pool"))

    def __call__(
        self, flat: torch.Tensor, samples: torch.Tensor, epoch: int, view: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(augmented view, the view before erasing and noise) of ``flat`` ``[B, P]``."""
        keys = sample_keys(self.seed, samples.cpu(), view, "ae-augment")
        if self.permute:
            flat = flat.gather(1, self.permutation(keys, epoch).to(flat.device))
        permuted = flat
        if self.erase > 0:
            flat = flat.masked_fill(self.erased(keys, epoch, flat.shape[1]).to(flat.device), 0.0)
        if self.noise > 0:
            flat = flat + self.noise * self.gaussian(keys, epoch, flat.shape[1]).to(flat.device)
        return flat, permuted

    def permutation(self, keys: torch.Tensor, epoch: int) -> torch.Tensor:
        """``[B, P]`` source positions: a pool entry, or a fresh permutation per layer."""
        if self.pool is not None:
            u = hashed_uniform(keys, epoch, PERMUTE, (1,))[:, 0]
            pick = (u * len(self.pool)).long().clamp_max(len(self.pool) - 1)
            return self.pool[pick]
        s = self.structure
        u = hashed_uniform(keys, epoch, PERMUTE, (s.hidden_units,)).numpy()
        maps = np.tile(np.arange(s.hidden_units + 1), (len(keys), 1))
        for number, layer in enumerate(s.layers[:-1]):
            base = s.unit_base[number]
            block = u[:, base : base + layer.units]
            maps[:, base : base + layer.units] = base + np.argsort(block, axis=1, kind="stable")
        return torch.from_numpy(s.permutation_index(maps))

    def erased(self, keys: torch.Tensor, epoch: int, size: int) -> torch.Tensor:
        """RandomErase's mask: with probability p one range of round(U(low, high) * P) values
        starting at floor(u * (P - length + 1))."""
        u = hashed_uniform(keys, epoch, ERASE, (3,)).double()
        low, high = self.scale
        hit = u[:, 0] < self.erase
        length = torch.round((low + (high - low) * u[:, 1]) * size).long()
        start = (u[:, 2] * (size - length + 1)).long()
        span = torch.arange(size)
        inside = (span >= start[:, None]) & (span < (start + length)[:, None])
        return hit[:, None] & inside

    def gaussian(self, keys: torch.Tensor, epoch: int, size: int) -> torch.Tensor:
        """Standard normal noise by Box-Muller from two hashed uniforms per value."""
        u = hashed_uniform(keys, epoch, NOISE, (2, size))
        radius = torch.sqrt(-2.0 * torch.log1p(-u[:, 0]))
        return radius * torch.cos(2.0 * torch.pi * u[:, 1])
