"""Datasets that need no files: the generated ``tetris`` toy set and scikit-learn's ``digits``.

They make the whole pipeline usable offline (tests, tutorials, quick zoos) with the same code
paths as the downloaded sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelZooError
from .preprocess import stratified_split
from .registry import RawSplits, register_dataset

TETRIS_SIDE = 4

# Each tetromino in its bounding box, 1 = part of the shape. "S" stands for the S/Z pair: its
# mirror image Z is not a rotation of S, and only one of the two is used so classes do not overlap.
TETROMINOES: dict[str, tuple[tuple[int, ...], ...]] = {
    "L": ((1, 0), (1, 0), (1, 1)),
    "T": ((1, 1, 1), (0, 1, 0)),
    "S": ((0, 1, 1), (1, 1, 0)),
    "O": ((1, 1), (1, 1)),
}


def tetris_rotations(name: str) -> list[np.ndarray]:
    """The distinct 90-degree rotations of a tetromino (L, T: 4; S: 2; O: 1), in rot90 order."""
    shape = np.array(TETROMINOES[name], dtype=np.float32)
    rotations: list[np.ndarray] = []
    for turns in range(4):
        rotated = np.rot90(shape, turns)
        if not any(np.array_equal(rotated, seen) for seen in rotations):
            rotations.append(np.ascontiguousarray(rotated))
    return rotations


def tetris_placements(rotation: np.ndarray) -> np.ndarray:
    """Every translation of one rotation that fits the 4x4 canvas, as binary ``[P, 4, 4]`` images,
    row offset major."""
    height, width = rotation.shape
    placed = []
    for row in range(TETRIS_SIDE - height + 1):
        for col in range(TETRIS_SIDE - width + 1):
            canvas = np.zeros((TETRIS_SIDE, TETRIS_SIDE), dtype=np.float32)
            canvas[row : row + height, col : col + width] = rotation
            placed.append(canvas)
    return np.stack(placed)


def generate_tetris(
    n: int, noise: float, rng: np.random.Generator, rotate: bool = False, translate: bool = False,
    pools: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy tetromino images ``[n, 4, 4]`` (float32) and their labels ``[n]`` (int64).

    Class counts are equal (the first ``n % 4`` classes get one more) and the labels are shuffled
    with ``rng``. By default every sample of a class is the same canonical shape (first rotation,
    top-left placement) plus noise: the 2021 paper's toy task, on which the 100-parameter MLP at
    lr 3e-5 learns gradually over 75 epochs, as its seed zoo needs. With ``rotate``/``translate``
    each sample draws a rotation uniformly from its shape's distinct rotations and a translation
    uniformly from the placements of that rotation: a much harder task for 5 hidden units. With
    ``pools`` (class name -> the placements ``[P, 4, 4]`` this split may use) each sample draws one
    of its class's pooled placements uniformly instead. Noise is drawn last, in one call, so the
    same seed gives the same shapes whatever the noise level.
    """
    classes = list(TETROMINOES)
    counts = [n // len(classes) + (index < n % len(classes)) for index in range(len(classes))]
    labels = rng.permutation(np.repeat(np.arange(len(classes)), counts))
    images = np.zeros((n, TETRIS_SIDE, TETRIS_SIDE), dtype=np.float32)
    for label, name in enumerate(classes):
        members = np.flatnonzero(labels == label)
        if pools is not None:
            pool = pools[name]
            images[members] = pool[rng.integers(len(pool), size=members.size)]
            continue
        placements = [tetris_placements(rotation) for rotation in tetris_rotations(name)]
        if not rotate:
            placements = placements[:1]
        rotation_of = rng.integers(len(placements), size=members.size)
        for rotation, placed in enumerate(placements):
            chosen = members[rotation_of == rotation]
            offsets = rng.integers(len(placed), size=chosen.size) if translate else 0
            images[chosen] = placed[offsets]
    images += rng.normal(0.0, noise, size=images.shape).astype(np.float32)
    return images, labels.astype(np.int64)


def unseen_placements(rotate: bool, translate: bool, fraction: float,
                      rng: np.random.Generator) -> tuple[dict, dict]:  # fmt: skip
    """Per class, the placements (rotations x translations enabled) split into the train split's
    and the test split's: ``fraction`` of each class's placements (rounded, at least one) appear
    only in the test split, so a model is tested on shapes it never saw in training."""
    train, test = {}, {}
    for name in TETROMINOES:
        rotations = tetris_rotations(name) if rotate else tetris_rotations(name)[:1]
        pool = np.concatenate([tetris_placements(r) if translate else tetris_placements(r)[:1]
                               for r in rotations])  # fmt: skip
        if len(pool) < 2:
            raise ModelZooError(f"dataset.options.unseen: tetris shape {name} has a single "
                                "placement without translate (O looks the same in every "
                                "rotation); set dataset.options.translate: true")  # fmt: skip
        held = min(len(pool) - 1, max(1, round(fraction * len(pool))))
        order = rng.permutation(len(pool))
        train[name], test[name] = pool[np.sort(order[held:])], pool[np.sort(order[:held])]
    return train, test


@register_dataset(
    "tetris",
    channels=1,
    size=TETRIS_SIDE,
    num_classes=len(TETROMINOES),
    train_size=1000,
    test_size=250,
    description="generated 4x4 grey tetrominoes (L, T, S, O) with Gaussian noise",
    options={
        "train_size": 1000,
        "test_size": 250,
        "noise": 0.1,
        "seed": 0,
        "rotate": False,
        "translate": False,
        "unseen": 0.0,
    },
    needs_files=False,
    minimums={"train_size": 1, "test_size": 1, "noise": 0, "seed": 0, "unseen": 0},
)
def load_tetris(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """Train and test come from the first two children of ``SeedSequence(seed)``, so they never
    share a random stream and each is reproducible on its own; the third chooses the placements
    only the test split shows (``unseen``)."""
    train_seed, test_seed, pool_seed = np.random.SeedSequence(options["seed"]).spawn(3)
    pools: tuple = (None, None)
    if options["unseen"] > 0:
        if options["unseen"] >= 1:
            raise ModelZooError(f"tetris option unseen: expected a fraction in [0, 1), got "
                                f"{options['unseen']}")  # fmt: skip
        pools = unseen_placements(options["rotate"], options["translate"], options["unseen"],
                                  np.random.default_rng(pool_seed))  # fmt: skip
    parts = []
    for size, seed, pool in zip((options["train_size"], options["test_size"]),
                                (train_seed, test_seed), pools):  # fmt: skip
        images, labels = generate_tetris(size, options["noise"], np.random.default_rng(seed),
                                         options["rotate"], options["translate"], pool)  # fmt: skip
        parts += [torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)]
    return RawSplits(*parts, classes=tuple(TETROMINOES))


DIGITS_TEST_SIZE = 360


@register_dataset(
    "digits",
    channels=1,
    size=8,
    num_classes=10,
    train_size=1797 - DIGITS_TEST_SIZE,
    test_size=DIGITS_TEST_SIZE,
    description="scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set)",
    options={"seed": 0},
    needs_files=False,
    minimums={"seed": 0},
)
def load_digits(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """The 1797 images ship inside scikit-learn; pixel counts 0..16 are scaled to [0, 1] and a
    stratified split (scikit-learn's ``train_test_split``, ``random_state=seed``) holds out 360."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = stratified_split(labels, DIGITS_TEST_SIZE, options["seed"])
    return RawSplits.cut(
        images, labels, train_idx, test_idx, tuple(str(digit) for digit in range(10))
    )
