"""The dataset registry: each dataset is one decorated loader function with its static facts.

The static facts (channels, native size, class count, split sizes) let a dry run compute input
shapes without touching any file; the loader is only called when data is really needed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from modelzoo.errors import DataError


class RawSplits(NamedTuple):
    """What a loader returns: the official train and test splits at native size, unprocessed.

    Images are ``[N, C, H, W]``, either uint8 in 0..255 or float in [0, 1] (generated sets may go
    slightly beyond through noise); labels are int64 ``[N]``.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    @classmethod
    def cut(
        cls,
        images: torch.Tensor,
        labels: torch.Tensor,
        train_index: torch.Tensor,
        test_index: torch.Tensor,
        classes: tuple[str, ...],
    ) -> RawSplits:
        """Train and test parts of one labelled set that has no official split."""
        return cls(images[train_index], labels[train_index], images[test_index],
                   labels[test_index], classes)  # fmt: skip


Loader = Callable[[Path | None, bool, Mapping[str, Any]], RawSplits]
"""``loader(root, download, options)``; ``root`` is None for datasets that need no files."""


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry. ``train_size``/``test_size`` are the official split sizes (for generated
    sets: with default options), before any validation split is taken off the train split."""

    name: str
    channels: int
    size: int
    num_classes: int
    train_size: int
    test_size: int
    description: str
    loader: Loader = field(repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    needs_files: bool = True
    minimums: Mapping[str, float] = field(default_factory=dict)  # smallest allowed option values

    @property
    def native_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images as stored (every registered dataset is square)."""
        return (self.channels, self.size, self.size)


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    *,
    channels: int,
    size: int,
    num_classes: int,
    train_size: int,
    test_size: int,
    description: str,
    options: Mapping[str, Any] | None = None,
    needs_files: bool = True,
    minimums: Mapping[str, float] | None = None,
) -> Callable[[Loader], Loader]:
    """Register the decorated loader as ``name``; ``options`` maps option keys to defaults and
    ``minimums`` option keys to their smallest allowed values (checked before any loading)."""

    def decorator(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = DatasetInfo(
            name=name,
            channels=channels,
            size=size,
            num_classes=num_classes,
            train_size=train_size,
            test_size=test_size,
            description=description,
            loader=loader,
            options=dict(options or {}),
            needs_files=needs_files,
            minimums=dict(minimums or {}),
        )
        return loader

    return decorator


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; an unknown name is a DataError listing the choices."""
    info = _REGISTRY.get(name) if isinstance(name, str) else None
    if info is None:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}{hint}"
        )
    return info


def num_classes(name: str) -> int:
    """Number of classes of ``name``, without loading it."""
    return dataset_info(name).num_classes


def resolve_options(info: DatasetInfo, given: Any) -> dict[str, Any]:
    """Defaults overlaid with the given ``(key, value)`` pairs, each checked against the type of
    its default (an int where an int is expected; int or float where a float is)."""
    if not isinstance(given, tuple) or not all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in given
    ):
        raise DataError(
            f"dataset {info.name!r}: options must be a mapping of option names to values, "
            f"got {given!r}"
        )
    resolved = dict(info.options)
    for key, value in given:
        if key not in info.options:
            valid = ", ".join(sorted(info.options)) or "none"
            raise DataError(f"dataset {info.name!r} has no option {key!r}; valid options: {valid}")
        resolved[key] = _check_option_type(info.name, key, value, info.options[key])
    for key, minimum in info.minimums.items():
        if resolved[key] < minimum:
            bound = f"at least {minimum}" if minimum >= 1 else f">= {minimum}"
            raise DataError(
                f"dataset {info.name!r}: option {key!r} must be {bound}, got {resolved[key]!r}"
            )
    return resolved


def _check_option_type(dataset: str, key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise DataError(
            f"dataset {dataset!r}: option {key!r} must be {type(default).__name__} "
            f"(default {default!r}), got {value!r}"
        )
    return value
