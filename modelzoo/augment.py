"""Weight-space augmentations of the 2021 paper (Schürholt et al., Section 2): composable, seeded.

Every augmentation is a callable ``aug(flat, rng) -> flat`` on float arrays ``[..., P]`` (leading
axes are a batch; each row gets its own draw) that takes *all* of its randomness from the
``numpy.random.Generator`` it is given, so a dataset that derives one generator per sample from
(seed, epoch, index, view) yields identical samples in every run, with any number of workers.

* :class:`PermuteUnits` reorders hidden neurons / conv channels; the network computes the same
  function (tested). ``pool=120`` draws from a fixed set of 120 permutations as in the paper's
  ablation; ``None`` draws a fresh one every time.
* :class:`RandomErase` zeroes one contiguous range of the weight vector with probability ``p``,
  its length a uniform fraction in ``scale`` of the vector (paper: p=0.5, 0.03-0.3, zeros).
* :class:`GaussianNoise` adds zero-mean noise (paper's ablation: std 0.05).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ModelZooError
from .tokens import WeightStructure

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _rows(flat: np.ndarray) -> np.ndarray:
    return flat.reshape(-1, flat.shape[-1])


@dataclass
class PermuteUnits:
    """Function-preserving permutation of hidden units (neurons, conv channels)."""

    structure: WeightStructure
    pool: int | None = None  # draw from this many fixed permutations (None: unlimited)
    pool_seed: int = 0
    _maps: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pool is not None:
            if self.pool < 1:
                raise ModelZooError(f"PermuteUnits: pool must be a positive count, got {self.pool}")
            self._maps = self.structure.random_permutations(
                np.random.default_rng(self.pool_seed), self.pool
            )

    def __call__(self, flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rows = _rows(flat)
        if self._maps is None:
            maps = self.structure.random_permutations(rng, rows.shape[0])
        else:
            maps = self._maps[rng.integers(0, len(self._maps), rows.shape[0])]
        return self.structure.permute(rows, maps).reshape(flat.shape)


@dataclass
class RandomErase:
    """With probability p, set one contiguous range (a ``scale`` fraction) to ``value``."""

    p: float = 0.5
    scale: tuple[float, float] = (0.03, 0.3)
    value: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.scale
        if not (0.0 <= self.p <= 1.0 and 0.0 <= low <= high <= 1.0):
            raise ModelZooError(
                f"RandomErase: expected 0<=p<=1 and 0<=low<=high<=1, got p={self.p}, "
                f"scale={self.scale}"
            )

    def __call__(self, flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        rows = _rows(flat).copy()
        n, size = rows.shape
        hit = rng.random(n) < self.p
        length = np.rint(rng.uniform(*self.scale, n) * size).astype(np.int64)
        start = (rng.random(n) * (size - length + 1)).astype(np.int64)
        span = np.arange(size)
        erase = hit[:, None] & (span >= start[:, None]) & (span < (start + length)[:, None])
        rows[erase] = self.value
        return rows.reshape(flat.shape)


@dataclass
class GaussianNoise:
    """Additive zero-mean Gaussian noise."""

    std: float = 0.05

    def __call__(self, flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return (flat + rng.normal(0.0, self.std, flat.shape)).astype(flat.dtype, copy=False)


@dataclass
class Compose:
    """Apply augmentations in order (each draws from the same generator, in turn)."""

    augmentations: Sequence[Augmentation]

    def __call__(self, flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for augmentation in self.augmentations:
            flat = augmentation(flat, rng)
        return flat


def paper_augmentations(structure: WeightStructure, noise: float | None = None) -> Compose:
    """Permutation + erasing (p 0.5, 0.03-0.3) as used in the 2021 paper; noise is off there
    ("inconsistent results ... we omit it"), pass ``noise=0.05`` for its ablation setting."""
    steps: list[Augmentation] = [PermuteUnits(structure), RandomErase()]
    if noise:
        steps.append(GaussianNoise(noise))
    return Compose(steps)


def sample_rng(seed: int, epoch: int, index: int, view: int = 0) -> np.random.Generator:
    """The generator of one sample's augmentation: a pure function of its coordinates."""
    return np.random.default_rng([int(seed), int(epoch), int(index), int(view)])
