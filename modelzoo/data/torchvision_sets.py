"""The public image datasets, read (and downloaded) through torchvision's dataset classes.

torchvision parses the on-disk formats; we take its raw arrays (``.data``, ``.targets``,
``.labels``) in bulk rather than iterating the dataset, which would build one PIL image per sample.
torchvision is imported lazily so dry runs and the generated datasets never pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelzoo._torchvision import import_torchvision
from modelzoo.errors import DataError

from .files import DatasetFiles, open_dataset
from .preprocess import stratified_split
from .registry import RawSplits, register_dataset

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _datasets() -> Any:
    return import_torchvision().datasets


def _labels(values: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), dtype=torch.int64)


def _digit_classes() -> tuple[str, ...]:
    return tuple(str(digit) for digit in range(10))


def _require(root: Path | None) -> Path:
    if root is None:  # the pipeline always passes a folder to datasets that need files
        raise ValueError("this dataset needs a data folder")
    return root


def _idx_dataset(class_name: str, title: str, root: Path | None, download: bool) -> RawSplits:
    """MNIST and Fashion-MNIST: uncompressed IDX files in ``<ClassName>/raw``."""
    data_dir = _require(root)
    files = DatasetFiles(title, tuple(f"{class_name}/raw/{name}" for name in _IDX_FILES))
    cls = getattr(_datasets(), class_name)
    train, test = (
        open_dataset(files, data_dir, download, lambda r, d, t=train: cls(r, train=t, download=d))
        for train in (True, False)
    )
    return RawSplits(
        train.data.unsqueeze(1),
        _labels(train.targets),
        test.data.unsqueeze(1),
        _labels(test.targets),
        classes=tuple(train.classes),
    )


@register_dataset(
    "mnist",
    channels=1,
    size=28,
    num_classes=10,
    train_size=60000,
    test_size=10000,
    description="MNIST handwritten digits, 28x28 grey (torchvision.datasets.MNIST)",
)
def load_mnist(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    return _idx_dataset("MNIST", "MNIST", root, download)


@register_dataset(
    "fashion_mnist",
    channels=1,
    size=28,
    num_classes=10,
    train_size=60000,
    test_size=10000,
    description="Fashion-MNIST clothing images, 28x28 grey (torchvision.datasets.FashionMNIST)",
)
def load_fashion_mnist(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    return _idx_dataset("FashionMNIST", "Fashion-MNIST", root, download)


def _cifar(
    class_name: str,
    title: str,
    folder: str,
    names: tuple[str, ...],
    root: Path | None,
    download: bool,
) -> RawSplits:
    """CIFAR-10/100: pickled batches; ``.data`` is ``[N, 32, 32, 3]`` uint8 (HWC)."""
    data_dir = _require(root)
    files = DatasetFiles(title, tuple(f"{folder}/{name}" for name in names))
    cls = getattr(_datasets(), class_name)
    train, test = (
        open_dataset(files, data_dir, download, lambda r, d, t=train: cls(r, train=t, download=d))
        for train in (True, False)
    )
    return RawSplits(
        torch.from_numpy(train.data).permute(0, 3, 1, 2),
        _labels(train.targets),
        torch.from_numpy(test.data).permute(0, 3, 1, 2),
        _labels(test.targets),
        classes=tuple(train.classes),
    )


@register_dataset(
    "cifar10",
    channels=3,
    size=32,
    num_classes=10,
    train_size=50000,
    test_size=10000,
    description="CIFAR-10 small natural images, 32x32 RGB (torchvision.datasets.CIFAR10)",
)
def load_cifar10(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    batches = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
    return _cifar("CIFAR10", "CIFAR-10", "cifar-10-batches-py", batches, root, download)


@register_dataset(
    "cifar100",
    channels=3,
    size=32,
    num_classes=100,
    train_size=50000,
    test_size=10000,
    description="CIFAR-100 (fine labels), 32x32 RGB (torchvision.datasets.CIFAR100)",
)
def load_cifar100(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    names = ("train", "test", "meta")
    return _cifar("CIFAR100", "CIFAR-100", "cifar-100-python", names, root, download)


@register_dataset(
    "svhn",
    channels=3,
    size=32,
    num_classes=10,
    train_size=73257,
    test_size=26032,
    description="SVHN house-number digits (cropped), 32x32 RGB, without 'extra' "
    "(torchvision.datasets.SVHN)",
)
def load_svhn(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """The .mat files go in their own ``svhn/`` folder (torchvision would drop them loose in the
    root); ``.data`` is ``[N, 3, 32, 32]`` and label 10 is already mapped to digit 0."""
    data_dir = _require(root)
    files = DatasetFiles("SVHN", ("train_32x32.mat", "test_32x32.mat"), subdir="svhn")
    svhn = _datasets().SVHN
    train, test = (
        open_dataset(files, data_dir, download, lambda r, d, s=split: svhn(r, split=s, download=d))
        for split in ("train", "test")
    )
    return RawSplits(
        torch.from_numpy(train.data),
        _labels(train.labels),
        torch.from_numpy(test.data),
        _labels(test.labels),
        classes=_digit_classes(),
    )


_STL10_CLASSES = (
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
)


@register_dataset(
    "stl10",
    channels=3,
    size=96,
    num_classes=10,
    train_size=5000,
    test_size=8000,
    description="STL-10 labelled images, 96x96 RGB, unlabelled part unused "
    "(torchvision.datasets.STL10)",
)
def load_stl10(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """torchvision checks ``unlabeled_X.bin`` too (it is in the same archive), so it must exist
    even though only the labelled train and test splits are used."""
    data_dir = _require(root)
    names = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")
    files = DatasetFiles("STL-10", tuple(f"stl10_binary/{name}" for name in names))
    stl10 = _datasets().STL10
    train, test = (
        open_dataset(files, data_dir, download, lambda r, d, s=split: stl10(r, split=s, download=d))
        for split in ("train", "test")
    )
    classes = tuple(getattr(train, "classes", ())) or _STL10_CLASSES
    return RawSplits(
        torch.from_numpy(train.data),
        _labels(train.labels),
        torch.from_numpy(test.data),
        _labels(test.labels),
        classes=classes,
    )


@register_dataset(
    "usps",
    channels=1,
    size=16,
    num_classes=10,
    train_size=7291,
    test_size=2007,
    description="USPS handwritten digits, 16x16 grey (torchvision.datasets.USPS)",
)
def load_usps(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """The bz2 files go in their own ``usps/`` folder; torchvision maps the stored [-1, 1] values
    to uint8."""
    data_dir = _require(root)
    files = DatasetFiles("USPS", ("usps.bz2", "usps.t.bz2"), subdir="usps")
    usps = _datasets().USPS
    train, test = (
        open_dataset(files, data_dir, download, lambda r, d, t=train: usps(r, train=t, download=d))
        for train in (True, False)
    )
    return RawSplits(
        torch.from_numpy(train.data).unsqueeze(1),
        _labels(train.targets),
        torch.from_numpy(test.data).unsqueeze(1),
        _labels(test.targets),
        classes=_digit_classes(),
    )


EUROSAT_SIZE = 64
EUROSAT_TEST_FRACTION = 0.2


@register_dataset(
    "eurosat",
    channels=3,
    size=EUROSAT_SIZE,
    num_classes=10,
    train_size=21600,
    test_size=5400,
    description="EuroSAT RGB Sentinel-2 land-use patches, 64x64 RGB, stratified 80/20 split "
    "(torchvision.datasets.EuroSAT)",
    options={"seed": 0},
    minimums={"seed": 0},
)
def load_eurosat(root: Path | None, download: bool, options: Mapping[str, Any]) -> RawSplits:
    """EuroSAT has no official split: a stratified 80/20 split seeded by option ``seed`` holds out
    the test part. The images are JPEG files, decoded once with PIL into one uint8 array."""
    data_dir = _require(root)
    files = DatasetFiles("EuroSAT", ("eurosat/2750",))
    folder = open_dataset(
        files, data_dir, download, lambda r, d: _datasets().EuroSAT(r, download=d)
    )
    images = _read_images(
        [path for path, _ in folder.samples], data_dir / "eurosat" / "2750", "EuroSAT"
    )
    labels = _labels([label for _, label in folder.samples])
    train_idx, test_idx = stratified_split(labels, EUROSAT_TEST_FRACTION, options["seed"])
    return RawSplits.cut(images, labels, train_idx, test_idx, tuple(folder.classes))


def _read_images(paths: list[str], folder: Path, title: str) -> torch.Tensor:
    """Decode RGB image files of one size into a uint8 ``[N, 3, H, W]`` tensor."""
    from PIL import Image, UnidentifiedImageError

    if not paths:
        raise DataError(f"{title} folder {folder} holds no images; replace it with the dataset")
    out = np.empty((len(paths), EUROSAT_SIZE, EUROSAT_SIZE, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{title} image {path} cannot be read ({error}); replace it") from None
        if pixels.shape != out.shape[1:]:
            raise DataError(
                f"{title} image {path} is {pixels.shape[1]}x{pixels.shape[0]}, expected "
                f"{EUROSAT_SIZE}x{EUROSAT_SIZE}; replace it with the original file"
            )
        out[index] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2)
