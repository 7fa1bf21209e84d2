"""From a :class:`DataConfig` to preprocessed train/validation/test tensors, cached per process.

Every model of a zoo trains on the same data, so the data is loaded and preprocessed once per
process and config; the config is checked up front so a typo fails before any file is read.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from numbers import Real
from pathlib import Path
from typing import Any, NoReturn

import torch

from modelzoo.errors import DataError

from .config import DataConfig, ImageData, TrainingData
from .files import resolve_data_dir
from .preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    channel_stats,
    normalize_,
    output_channels,
    preprocess,
    split_indices,
)
from .registry import DatasetInfo, RawSplits, dataset_info, resolve_options

NORMALIZE_CHOICES = ("dataset", "imagenet")


def validate_config(config: DataConfig) -> tuple[DatasetInfo, dict[str, Any]]:
    """Check every field of ``config``; return the registry entry and the resolved options."""
    info = dataset_info(config.name)
    fail = functools.partial(_fail, info.name)
    fraction = config.train_fraction
    if not _is_number(fraction) or not 0.0 < fraction <= 1.0:
        fail(f"train_fraction must be in (0, 1], got {fraction!r}")
    if not _is_int(config.split_seed) or config.split_seed < 0:
        fail(f"split_seed must be a non-negative integer, got {config.split_seed!r}")
    if config.resize is not None and (not _is_int(config.resize) or config.resize < 1):
        fail(f"resize must be a positive integer (side length in pixels), got {config.resize!r}")
    if config.crop is not None and (
        not _is_int(config.crop) or not 1 <= config.crop <= info.size
    ):
        fail(f"crop must be a side length from 1 to {info.size} (the images are "
             f"{info.size}x{info.size}), got {config.crop!r}")  # fmt: skip
    for key in ("grayscale", "rgb", "download"):
        if not isinstance(getattr(config, key), bool):
            fail(f"{key} must be true or false, got {getattr(config, key)!r}")
    options = resolve_options(info, config.options)
    _check_normalize(info.name, config.normalize, _channels(info, config))
    return info, options


def input_shape(config: DataConfig) -> tuple[int, int, int]:
    """``(C, H, W)`` of the preprocessed images, from the registry alone (no file is read)."""
    info, _ = validate_config(config)
    side = config.resize if config.resize is not None else (config.crop or info.size)
    return (_channels(info, config), side, side)


def load_training_data(config: DataConfig) -> TrainingData:
    """Load, split and preprocess the dataset of ``config`` (cached per process, see below).

    The data folder is resolved before the cache lookup, so a changed ``$MODELZOO_DATA_DIR`` is
    a different cache entry. The cached tensors are shared by every caller: do not modify them.
    """
    info = dataset_info(config.name)
    data_dir = str(resolve_data_dir(config.data_dir)) if info.needs_files else None
    return _load_cached(replace(config, data_dir=data_dir))


@functools.lru_cache(maxsize=4)
def _load_cached(config: DataConfig) -> TrainingData:
    info, options = validate_config(config)
    root = Path(config.data_dir) if config.data_dir is not None else None
    raw = info.loader(root, config.download, options)
    _check_raw(info, raw, root)

    def part(images: torch.Tensor, labels: torch.Tensor) -> ImageData:
        processed = preprocess(
            images, grayscale=config.grayscale, rgb=config.rgb, size=config.resize, crop=config.crop
        )
        return ImageData(processed, labels.to(torch.int64).contiguous(), raw.classes)

    validation = None
    if config.train_fraction < 1.0:
        n = raw.train_images.shape[0]
        train_idx, val_idx = split_indices(n, config.train_fraction, config.split_seed)
        if len(train_idx) == 0 or len(val_idx) == 0:
            _fail(
                info.name,
                f"train_fraction {config.train_fraction} of {n} images leaves an empty part",
            )
        train = part(raw.train_images[train_idx], raw.train_labels[train_idx])
        validation = part(raw.train_images[val_idx], raw.train_labels[val_idx])
    else:
        train = part(raw.train_images, raw.train_labels)
    test = part(raw.test_images, raw.test_labels)

    stats = _normalization_stats(config.normalize, train.images)
    if stats is not None:
        for data in (train, validation, test):
            if data is not None:
                normalize_(data.images, *stats)
    return TrainingData(train=train, validation=validation, test=test)


load_training_data.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]
load_training_data.cache_info = _load_cached.cache_info  # type: ignore[attr-defined]


def _channels(info: DatasetInfo, config: DataConfig) -> int:
    return output_channels(info.channels, bool(config.grayscale), bool(config.rgb))


def _normalization_stats(
    normalize: Any, train_images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if normalize is None:
        return None
    if normalize == "dataset":
        return channel_stats(train_images)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalize == "imagenet" else normalize
    return torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64)


def _check_normalize(name: str, normalize: Any, channels: int) -> None:
    if normalize is None or normalize == "dataset":
        return
    if normalize == "imagenet":
        if channels != 3:
            _fail(name, "normalize 'imagenet' needs 3-channel images; set rgb: true")
        return
    shape_ok = (
        isinstance(normalize, tuple)
        and len(normalize) == 2
        and all(isinstance(stat, tuple) and len(stat) in (1, channels) for stat in normalize)
        and all(_is_number(value) for stat in normalize for value in stat)
    )
    if not shape_ok:
        _fail(
            name,
            f"normalize must be null, 'dataset', 'imagenet' or [[mean...], [std...]] with 1 or "
            f"{channels} values each, got {normalize!r}",
        )
    if any(value <= 0 for value in normalize[1]):
        _fail(name, f"normalize std values must be positive, got {list(normalize[1])}")


def _check_raw(info: DatasetInfo, raw: RawSplits, root: Path | None) -> None:
    """Catch files that parse but hold something else (a different release, a truncated copy)."""
    where = f"the files under {root}" if root is not None else "the generated data"
    for split, images, labels in (
        ("train", raw.train_images, raw.train_labels),
        ("test", raw.test_images, raw.test_labels),
    ):
        problem = None
        if images.dim() != 4 or tuple(images.shape[1:]) != info.native_shape:
            problem = (
                f"{split} images of shape {tuple(images.shape)}, expected [N, {info.native_shape}]"
            )
        elif images.shape[0] == 0 or labels.shape != (images.shape[0],):
            problem = f"{images.shape[0]} {split} images with labels of shape {tuple(labels.shape)}"
        elif labels.min() < 0 or labels.max() >= info.num_classes:
            problem = f"{split} labels outside 0..{info.num_classes - 1}"
        if problem is not None:
            _fail(info.name, f"{where} hold {problem}; replace them with the original dataset")
    if len(raw.classes) != info.num_classes:
        _fail(info.name, f"{where} name {len(raw.classes)} classes, expected {info.num_classes}")


def _fail(name: str, message: str) -> NoReturn:
    raise DataError(f"dataset {name!r}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
