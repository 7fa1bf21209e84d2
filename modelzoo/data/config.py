"""The value types of the data API: what a spec asks for and what a training run gets back.

They live apart from the loading code so that the registry, the loaders and the pipeline can all
import them without import cycles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True, eq=False)
class ImageData(Dataset):
    """One split, fully preprocessed; shared by every caller of the cache, so treat it as read-only.

    A map-style ``torch.utils.data.Dataset`` like torchvision's (``len``, ``[i] -> (image,
    label)``, so ``DataLoader(zoo.data("test"))`` works) that also exposes the whole tensors.

    ``images`` is float32 ``[N, C, H, W]`` (resized, grey/RGB converted, normalised) and ``labels``
    is int64 ``[N]`` with values in ``range(len(classes))``. Equality is identity: comparing tensors
    element-wise is never what ``==`` on a split should mean.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


@dataclass(frozen=True, eq=False)
class TrainingData:
    """The parts a zoo is trained and evaluated on; ``validation`` is None unless asked for."""

    train: ImageData
    validation: ImageData | None
    test: ImageData


@dataclass(frozen=True)
class DataConfig:
    """The spec's ``dataset:`` section; frozen and hashable so loads can be cached on it.

    ``__post_init__`` only turns list/dict spellings (as they come out of YAML) into tuples so the
    config stays hashable; the values themselves are checked by :func:`validate_config`, which
    raises :class:`~modelzoo.errors.DataError` with a one-line explanation.
    """

    name: str
    data_dir: str | None = None
    train_fraction: float = 1.0
    split_seed: int = 0
    resize: int | None = None
    crop: int | None = None
    grayscale: bool = False
    rgb: bool = False
    normalize: str | tuple | None = None
    download: bool = True
    options: tuple = ()

    @classmethod
    def from_section(cls, dataset: Mapping[str, Any], data_dir: str | None = None) -> DataConfig:
        """The config of a spec's (or a run's, or a zoo manifest's) ``dataset:`` section."""
        normalize = dataset.get("normalize")
        if isinstance(normalize, Mapping):
            normalize = (tuple(normalize["mean"]), tuple(normalize["std"]))
        return cls(
            name=dataset["name"],
            data_dir=data_dir,
            train_fraction=dataset.get("train_fraction", 1.0),
            split_seed=dataset.get("split_seed", 0),
            resize=dataset.get("resize"),
            crop=dataset.get("crop"),
            grayscale=dataset.get("grayscale", False),
            rgb=dataset.get("rgb", False),
            normalize=normalize,
            download=dataset.get("download", True),
            options=dataset.get("options") or {},
        )

    def __post_init__(self) -> None:
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            object.__setattr__(self, "data_dir", str(self.data_dir))
        if isinstance(self.normalize, list | tuple):
            object.__setattr__(self, "normalize", _as_tuple(self.normalize))
        object.__setattr__(self, "options", _canonical_options(self.options))


def _as_tuple(value: Any) -> Any:
    """Recursively turn lists into tuples (YAML gives lists; the cache needs hashable values)."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(item) for item in value)
    return value


def _canonical_options(options: Any) -> Any:
    """Sorted ``(key, value)`` pairs from a mapping or a sequence of pairs; anything else is kept
    as given for validation to report."""
    if options is None:
        return ()
    if isinstance(options, Mapping):
        pairs = list(options.items())
    elif isinstance(options, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in options
    ):
        pairs = [tuple(pair) for pair in options]
    else:
        return options
    return tuple(sorted(((str(key), _as_tuple(value)) for key, value in pairs), key=_key))


def _key(pair: tuple[str, Any]) -> str:
    return pair[0]
