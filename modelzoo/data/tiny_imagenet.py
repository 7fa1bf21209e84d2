"""Tiny ImageNet (200 classes, 64x64 RGB), read from the folder layout of its official archive.

``tiny-imagenet-200.zip`` (CS231n, Stanford) unpacks to::

    tiny-imagenet-200/wnids.txt                       the 200 WordNet ids, one per line
    tiny-imagenet-200/words.txt                       wnid <TAB> names (optional: class names)
    tiny-imagenet-200/train/<wnid>/images/*.JPEG      500 training images per class
    tiny-imagenet-200/val/images/*.JPEG               10,000 validation images
    tiny-imagenet-200/val/val_annotations.txt         file <TAB> wnid <TAB> x0 y0 x1 y1

The labelled validation set is the test split (the official test set has no labels), as in the
Model Zoos ResNet-18 zoo. Class indices follow the sorted wnids (what torchvision's ImageFolder
would give the train folder). torchvision has no Tiny ImageNet class, so the archive is fetched
with torchvision's download helper and the JPEGs are decoded here with PIL, once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelzoo._torchvision import import_torchvision
from modelzoo.errors import DataError

from .files import DOWNLOAD_TIMEOUT_S, network_timeout, short_reason
from .registry import RawSplits, register_dataset

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SIDE = 64


@register_dataset(
    "tiny_imagenet",
    channels=3,
    size=SIDE,
    num_classes=200,
    train_size=100_000,
    test_size=10_000,
    description="Tiny ImageNet, 200 classes, 64x64 RGB; the labelled val set is the test split "
    "(folder layout of the official tiny-imagenet-200.zip)",
)
def load_tiny_imagenet(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    if root is None:
        raise ValueError("this dataset needs a data folder")
    base = root / FOLDER
    if not (base / "wnids.txt").is_file():
        if not download:
            raise DataError(f"Tiny ImageNet not found under {root} (expected {FOLDER}/wnids.txt); "
                            "downloading is off. Unpack tiny-imagenet-200.zip there or pass "
                            "--data-dir DIR.")  # fmt: skip
        _download(root)
    wnids = [line.strip() for line in _read(base / "wnids.txt").splitlines() if line.strip()]
    if len(wnids) != 200 or len(set(wnids)) != 200:
        raise DataError(f"{base / 'wnids.txt'} lists {len(set(wnids))} distinct classes, expected "
                        "200; replace it with the original file")  # fmt: skip
    wnids.sort()
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train_files, train_labels = [], []
    for wnid in wnids:
        files = sorted((base / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise DataError(f"Tiny ImageNet: {base / 'train' / wnid / 'images'} holds no JPEG "
                            "images; unpack the archive again")  # fmt: skip
        train_files += files
        train_labels += [index[wnid]] * len(files)
    test_files, test_labels = [], []
    annotations = base / "val" / "val_annotations.txt"
    for number, line in enumerate(_read(annotations).splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{annotations}: line {number}: expected 'file<TAB>wnid...' with one "
                            f"of the 200 wnids, got {line[:80]!r}")  # fmt: skip
        test_files.append(base / "val" / "images" / fields[0])
        test_labels.append(index[fields[1]])
    return RawSplits(
        _decode(train_files), torch.tensor(train_labels, dtype=torch.int64),
        _decode(test_files), torch.tensor(test_labels, dtype=torch.int64),
        classes=tuple(_names(base, wnids)),
    )  # fmt: skip


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(
            f"Tiny ImageNet: cannot read {path} ({error}); unpack the archive again"
        ) from None


def _names(base: Path, wnids: list[str]) -> list[str]:
    """Readable class names from words.txt where present, else the wnids."""
    words: dict[str, str] = {}
    if (base / "words.txt").is_file():
        for line in _read(base / "words.txt").splitlines():
            wnid, _, name = line.partition("\t")
            words[wnid] = name.split(",")[0].strip() or wnid
    return [words.get(wnid, wnid) for wnid in wnids]


def _decode(files: list[Path]) -> torch.Tensor:
    """uint8 ``[N, 3, 64, 64]``; grey JPEGs (Tiny ImageNet has some) are converted to RGB."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(files), SIDE, SIDE, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(
                f"Tiny ImageNet image {path} cannot be read ({error}); replace it"
            ) from None
        if pixels.shape != (SIDE, SIDE, 3):
            raise DataError(f"Tiny ImageNet image {path} is {pixels.shape[1]}x{pixels.shape[0]}, "
                            f"expected {SIDE}x{SIDE}; replace it with the original file")  # fmt: skip
        out[i] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _download(root: Path) -> None:
    utils = import_torchvision().datasets.utils
    try:
        with network_timeout(DOWNLOAD_TIMEOUT_S):
            utils.download_and_extract_archive(URL, str(root), remove_finished=True)
    except Exception as error:
        raise DataError(f"Tiny ImageNet not found under {root} (expected {FOLDER}/wnids.txt); "
                        f"download failed: {short_reason(error)}. Unpack tiny-imagenet-200.zip "
                        "there or pass --data-dir DIR.") from None  # fmt: skip
